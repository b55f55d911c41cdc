"""The pieces of the resilience work on their own: reading a provider's quota headers, the
breaker's state machine on a fake clock, quota pauses, and the limits app.config may set."""
from __future__ import annotations

import email.utils
import threading

import pytest
from circuits import BaseComponent

from rc_cts import RateLimited, check_rate_limit
from rc_cts.config.settings import ConfigError, settings_from_opts
from rc_cts.lookups.breaker import Breaker, BreakerState
from rc_cts.lookups.calls import DEFERRED, DONE, call_searcher
from rc_cts.lookups.limits import SearcherLimits
from rc_cts.lookups.provider_quota import DEFAULT_PAUSE_SECS, MAX_PAUSE_SECS, wait_from_headers
from rc_cts.lookups.quota import LocalQuota, parse_rate_limit
from rc_cts.lookups.registry import fingerprint

NOW = 1_800_000_000.0


# -- the provider's headers ------------------------------------------------------------------
@pytest.mark.parametrize("headers, wait", [
    ({"Retry-After": "2"}, 2.0),
    ({"retry-after": "0"}, 0.0),
    ({"Retry-After": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
    ({"X-RateLimit-Reset": "45"}, 45.0),                          # seconds from now
    ({"X-RateLimit-Reset": str(int(NOW + 90))}, 90.0),            # a Unix time
    ({"X-RateLimit-Reset": str(int((NOW + 12) * 1000))}, 12.0),   # a Unix time in milliseconds
    ({"RateLimit-Reset": "7"}, 7.0),
    ({"Retry-After": "soon", "X-RateLimit-Reset": "5"}, 5.0),      # the one that reads
    ({"Retry-After": "-3"}, DEFAULT_PAUSE_SECS),
    ({"Retry-After": "inf"}, DEFAULT_PAUSE_SECS),
    ({"Retry-After": "nan"}, DEFAULT_PAUSE_SECS),
    ({"Retry-After": "Tue, 99 Foo 2026 99:99:99 GMT"}, DEFAULT_PAUSE_SECS),
    ({"Retry-After": str(10 ** 8)}, MAX_PAUSE_SECS),               # bounded: a garbled header
    ({}, DEFAULT_PAUSE_SECS),
])
def test_wait_from_headers(headers, wait):
    assert wait_from_headers(headers, now=NOW) == pytest.approx(wait, abs=1.0)


class FakeResponse:
    def __init__(self, status, headers=None, attr="status_code"):
        setattr(self, attr, status)
        self.headers = headers or {}


def test_check_rate_limit_raises_for_a_429_and_passes_other_responses():
    with pytest.raises(RateLimited) as info:
        check_rate_limit(FakeResponse(429, {"Retry-After": "3"}))
    assert info.value.retry_after == 3.0
    with pytest.raises(RateLimited):
        check_rate_limit(FakeResponse(429, {}, attr="status"))  # aiohttp's name for it
    ok = FakeResponse(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9"})
    assert check_rate_limit(ok) is ok  # outside a framework call: nothing to pause, no error
    assert check_rate_limit(FakeResponse(500)).status_code == 500  # failures are the searcher's


class Event:
    request_id = "r"
    name = "net.ip"


def test_a_response_that_spent_the_last_call_is_answered_and_pauses_the_next():
    def searcher():
        check_rate_limit(FakeResponse(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "9"}))
        return {"props": [{"type": "string", "name": "n", "value": "v"}]}
    outcome = call_searcher(searcher, "S", Event(), pass_event=False)
    assert outcome.status == DONE and len(outcome.hits) == 1 and outcome.pause_secs == pytest.approx(9, abs=1)

    def limited():
        raise RateLimited(4)
    outcome = call_searcher(limited, "S", Event(), pass_event=False)
    assert outcome.status == DEFERRED and outcome.wait_secs == 4 and outcome.hits == []


def test_the_call_signals_of_one_thread_are_not_another_threads():
    seen = {}

    def searcher(name, remaining):
        check_rate_limit(FakeResponse(200, {"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": "5"}))
        seen[name] = True

    results = {}
    threads = [threading.Thread(target=lambda n=n, r=r: results.__setitem__(
        n, call_searcher(lambda: searcher(n, r), n, Event(), pass_event=False)))
        for n, r in (("a", "0"), ("b", "3"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results["a"].pause_secs > 0 and results["b"].pause_secs == 0


# -- the breaker -----------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def breaker(**limits):
    clock = Clock()
    return Breaker("S", SearcherLimits(**limits), clock), clock


def test_it_opens_after_failures_in_a_row_and_a_success_resets_the_run():
    b, _ = breaker(breaker_failures=3, breaker_failure_ratio=0)
    for ok in (False, False, True, False, False):
        assert b.allow()
        b.record(ok)
    assert b.state is BreakerState.CLOSED
    b.record(False)
    assert b.state is BreakerState.OPEN and not b.allow() and b.trips == 1


def test_it_opens_on_the_failure_ratio_over_its_window():
    b, _ = breaker(breaker_failures=0, breaker_failure_ratio=0.5, breaker_window=10)
    for n in range(9):
        b.record(n % 2 == 0)  # 4 failures of 9: the window is not full yet
    assert b.state is BreakerState.CLOSED
    b.record(False)           # 5 of 10
    assert b.state is BreakerState.OPEN


def test_one_probe_after_the_cooldown_which_grows_until_a_probe_succeeds():
    b, clock = breaker(breaker_failures=1, breaker_cooldown_secs=10, breaker_max_cooldown_secs=25)
    b.record(False)
    assert b.retry_in() == 10
    clock.now += 10
    assert b.allow() and b.probe and b.state is BreakerState.HALF_OPEN
    assert not b.allow()            # one probe at a time
    b.record(True)                  # a call from before it opened: not the probe
    assert b.state is BreakerState.HALF_OPEN
    b.record(False, probe=True)
    assert b.state is BreakerState.OPEN and b.retry_in() == 20  # doubled
    clock.now += 20
    assert b.allow()
    b.record(False, probe=True)
    assert b.retry_in() == 25       # at most breaker_max_cooldown_secs
    clock.now += 25
    assert b.allow()
    b.record(None, probe=True)      # the probe never reached the provider (its quota): probe again
    assert b.state is BreakerState.HALF_OPEN and b.allow()
    b.record(True, probe=True)
    assert b.state is BreakerState.CLOSED and b.trips == 3
    b.record(False)
    assert b.retry_in() == 10       # a fresh start: the cool-down is back to its first length


def test_a_breaker_with_both_triggers_off_never_opens():
    b, _ = breaker(breaker_failures=0, breaker_failure_ratio=0)
    for _ in range(100):
        b.record(False)
    assert b.state is BreakerState.CLOSED


# -- quotas ----------------------------------------------------------------------------------
def test_a_local_quota_counts_every_window_and_takes_the_providers_pause():
    quota = LocalQuota(parse_rate_limit("2/second, 3/minute"))
    assert quota.remaining() == [2, 3]
    assert quota.acquire(now=0.0) == 0 and quota.acquire(now=0.1) == 0
    assert quota.acquire(now=0.2) > 0.8           # the second's window
    assert quota.acquire(now=1.2) == 0
    assert quota.acquire(now=2.4) > 57            # the minute's window
    quota = LocalQuota(parse_rate_limit("100/second"))
    quota.pause(5)
    assert quota.acquire() > 4.5


# -- what app.config may set -----------------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("breaker_failure_ratio", "1.5", "between 0 and 1"),
    ("breaker_cooldown_secs", "0", "greater than 0"),
    ("cache_ttl_secs", "-1", "must not be negative"),
    ("rate_limit", "5 per fortnight", "not like"),
    ("breaker_failures", "many", "not a valid int"),
    ("cache_tll_secs", "5", "is not one of"),
])
def test_bad_per_service_values_name_their_section_and_option(option, value, message):
    with pytest.raises(ConfigError) as info:
        settings_from_opts({"custom_threat_service.intel": {option: value}})
    assert "[custom_threat_service.intel]" in str(info.value) and message in str(info.value)


def test_zero_turns_a_cache_or_a_breaker_trigger_off():
    settings = settings_from_opts({"custom_threat_service.intel": {"cache_ttl_secs": "0", "breaker_failures": "0"}})
    assert settings.service_limits["intel"] == {"cache_ttl_secs": 0.0, "breaker_failures": 0}


# -- the fingerprint in cache keys -----------------------------------------------------------
class KeyedSearcher(BaseComponent):
    def __init__(self, key, url="https://api.example", calls=None):
        super().__init__()
        self.api_key = key
        self.url = url
        self.options = {"api_key": key, "timeout": 10}
        self.lock = threading.Lock()   # not a setting: ignored


class Declared(KeyedSearcher):
    def cache_fingerprint(self):
        return self.url


def test_the_fingerprint_follows_credentials_and_options_and_holds_no_secret():
    one = fingerprint(KeyedSearcher("k-123456"))
    assert one == fingerprint(KeyedSearcher("k-123456"))
    assert one != fingerprint(KeyedSearcher("k-654321"))
    assert one != fingerprint(KeyedSearcher("k-123456", url="https://other.example"))
    assert "k-123456" not in one and len(one) == 16
    assert fingerprint(Declared("a")) == fingerprint(Declared("b"))  # it said what counts
    assert fingerprint(Declared("a")) != fingerprint(Declared("a", url="https://x"))


@pytest.mark.parametrize("text, windows", [
    ("4/minute,500/day", ["4/minute", "500/day"]),          # no space after the comma
    ("4/minute, 15,000/month", ["4/minute", "15000/month"]),  # a thousands separator
    ("1,000/day; 5/second", ["1000/day", "5/second"]),
    ("50/7days", ["50/week"]),
    ("5 per 2 hours", ["5/2hours"]),
    ("3/mins", ["3/minute"]),
])
def test_rate_limits_read_as_providers_write_them(text, windows):
    assert [w.describe() for w in parse_rate_limit(text)] == windows


@pytest.mark.parametrize("text", ["5/ms", "4/fortnight", "0/day", "5/", "per day"])
def test_rate_limits_that_name_no_window_are_refused(text):
    with pytest.raises(ValueError):
        parse_rate_limit(text)


def test_one_bad_class_attribute_is_ignored_alone(caplog):
    from rc_cts.lookups.registry import SearcherRegistry

    from rc_cts import searcher_channel

    class Declared(BaseComponent):
        channel = searcher_channel("declared")
        rate_limit = "4/minute"
        cache_ttl_secs = -5             # cannot be: ignored, logged
        breaker_cooldown_secs = 900     # with the next one: checked together, both kept
        breaker_max_cooldown_secs = 1200

        from circuits import handler as _handler

        @_handler("net.ip")
        def lookup(self, event, *args, **kwargs):
            return None

    registry = SearcherRegistry(lambda label, limits, service: _Bulkhead(limits), SearcherLimits())
    searcher = registry.adopt(Declared())
    assert searcher.limits.rate_limit == "4/minute" and searcher.limits.cache_ttl_secs == 600
    assert searcher.limits.breaker_cooldown_secs == 900
    assert "cache_ttl_secs = -5 ignored" in caplog.text


class _Bulkhead:
    inline = False

    def __init__(self, limits):
        self.limits = limits
