"""The edges of quotas and breakers a review found, each through a real service on a free port:
zero and NaN waits, readiness without traffic, bounded waiting, values in error lines, lost probes."""
from __future__ import annotations

import time


from .test_resilience import api, ip, ops, serve  # noqa: F401  (fixtures)
from .resilience_searchers import FlakySearcher, LimitedSearcher


def test_a_429_with_retry_after_zero_does_not_hammer_the_provider(serve, api):
    """Retry-After: 0 (or a reset time a second in the past: clock skew) gives a zero pause:
    the call is DEFERRED and resubmitted at once, with no backoff, until lookup_timeout_secs."""
    api.answer("/limited", 429, {"error": "slow down"}, headers={"Retry-After": "0"})
    svc = serve([LimitedSearcher], {"limited_api": {"url": api.url}})
    c = svc.client()
    r = c.post("limited", ip())
    assert r.status == 303
    time.sleep(2)
    calls = len(api.calls("/limited"))
    assert calls <= 3, f"{calls} calls to the provider in ~2.5 s for one lookup"


def test_a_429_with_a_reset_time_in_the_past_waits_a_second_not_zero(serve, api):
    api.answer("/limited", 429, {}, headers={"X-RateLimit-Reset": str(int(time.time()) - 5)})
    svc = serve([LimitedSearcher], {"limited_api": {"url": api.url}})
    r = svc.client().post("limited", ip())
    assert r.status == 303
    time.sleep(2)
    calls = len(api.calls("/limited"))
    assert calls <= 3, f"{calls} calls to the provider in ~2.5 s for one lookup"


from circuits import BaseComponent, handler  # noqa: E402
from rc_cts import RateLimited, searcher_channel  # noqa: E402

INLINE_CALLS = []


class InlineRateLimited(BaseComponent):
    """blocking = False (answers from memory), and its in-memory budget says 'no more, now'."""
    channel = searcher_channel("inline429")
    blocking = False

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        INLINE_CALLS.append(time.time())
        raise RateLimited(retry_after=0)


def test_an_inline_searcher_raising_rate_limited_zero_does_not_recurse_on_the_loop_thread(serve, api):
    INLINE_CALLS.clear()
    svc = serve([InlineRateLimited], {})
    r = svc.client().post("inline429", ip())
    time.sleep(1)
    assert len(INLINE_CALLS) <= 3, f"{len(INLINE_CALLS)} calls, status {r.status} {r.json}"


def test_readyz_recovers_after_the_cooldown_without_traffic(serve, api):
    """An unready replica gets no traffic (Kubernetes takes it out of the Service); the breaker
    moves OPEN -> HALF_OPEN only inside allow(), i.e. on a call: so /readyz stays 503 for good."""
    api.answer("/flaky", 500, {"error": "down"})
    svc = serve([FlakySearcher], {"flaky_api": {"url": api.url},
                                  "custom_threat_service.breaker": {"breaker_failures": "2",
                                                                    "breaker_cooldown_secs": "1"}})
    c = svc.client()
    for n in range(2):
        assert c.post("breaker", ip(n)).status == 303
    assert ops(svc).request("GET", "/readyz").status == 503
    api.answer("/flaky", 200, {"verdict": "back"})  # the provider is back
    time.sleep(5)  # five cool-downs, no traffic (none reaches a pod that is not ready)
    r = ops(svc).request("GET", "/readyz")
    assert r.status == 200, r.json


from .resilience_searchers import QuotaSearcher  # noqa: E402


def test_lookups_waiting_for_a_spent_quota_are_bounded_by_max_queue(serve, api):
    """Each distinct artifact POSTed while the searcher's quota is spent stays in the
    dispatcher's memory (a Lookup, its event, a timer; and its uploaded file, on disk) until the
    quota frees: past max_queue, and past lookup_timeout_secs, the only bound there was before."""
    api.answer("/quota", 200, {"verdict": "listed"})
    svc = serve([QuotaSearcher], {"quota_api": {"url": api.url},
                                  "custom_threat_service.quota": {"rate_limit": "1/hour", "max_queue": "5"}},
                lookup_timeout_secs="1", sync_wait_secs="0")
    c = svc.client()
    for n in range(200):
        assert c.post("quota", {"type": "net.ip", "value": f"198.51.100.{n % 250}" if n < 250 else ""}).status in (200, 303)
    time.sleep(3)  # three lookup_timeout_secs
    active = len(svc.service.dispatcher.active)
    assert active <= 5, f"{active} lookups still held, {len(api.calls('/quota'))} calls made"


NAN_CALLS = []


class NanRateLimited(BaseComponent):
    """Its provider sent 'X-Wait: nan' once; the searcher passes float(header) on, as documented."""
    channel = searcher_channel("nan429")

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        NAN_CALLS.append(time.time())
        if len(NAN_CALLS) == 1:
            raise RateLimited(retry_after=float("nan"))
        from rc_cts import Hit, StringProp
        return Hit(StringProp(name="Verdict", value="ok"))


def test_rate_limited_nan_pauses_for_the_default_not_for_good(serve, api):
    NAN_CALLS.clear()
    svc = serve([NanRateLimited], {}, lookup_timeout_secs="2")
    c = svc.client()
    first = c.post("nan429", ip(1))
    time.sleep(3)
    r = c.post("nan429", ip(2))  # a later, unrelated artifact
    paused = svc.service.dispatcher.registry.searchers()[0].bulkhead.paused_for()
    # before the fix: paused_for() == 0 (max(0, nan)) yet _has_room() is False for good:
    # no call ever starts again, and no retry_secs says so
    assert 0 < paused <= 60 and r.json["retry_secs"] > 1, (paused, r.status, r.json)


def test_a_failing_searchers_error_line_carries_no_artifact_value(serve, api, caplog):
    """docs/searchers.rst: 'logged with its traceback (the artifact's value only at DEBUG)'. The
    traceback of requests' raise_for_status() (the docs' worked VirusTotal example) names the URL."""
    import logging
    api.answer("/flaky", 500, {"error": "down"})
    svc = serve([FlakySearcher], {"flaky_api": {"url": api.url}})
    with caplog.at_level(logging.INFO):
        svc.client().post("breaker", {"type": "net.ip", "value": "203.0.113.77"})
        time.sleep(0.5)
    above_debug = [logging.Formatter().format(r) for r in caplog.records if r.levelno > logging.DEBUG]
    leaks = [text.splitlines()[-1] for text in above_debug if "203.0.113.77" in text]
    assert not leaks, leaks


import asyncio  # noqa: E402

PROBE_CALLS = []


class InlineFlaky(BaseComponent):
    """blocking = False; fails twice, then its probe raises a BaseException (CancelledError from
    an asyncio helper it uses), then it answers for good."""
    channel = searcher_channel("inlineprobe")
    blocking = False
    breaker_failures = 2
    breaker_cooldown_secs = 0.5

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        PROBE_CALLS.append(time.time())
        if len(PROBE_CALLS) <= 2:
            raise ValueError("down")
        if len(PROBE_CALLS) == 3:
            raise asyncio.CancelledError()
        from rc_cts import Hit, StringProp
        return Hit(StringProp(name="Verdict", value="ok"))


def test_an_inline_probe_that_raises_a_base_exception_is_recorded_and_the_breaker_moves_on(serve, api):
    PROBE_CALLS.clear()
    svc = serve([InlineFlaky], {})
    c = svc.client()
    for n in range(2):
        c.post("inlineprobe", ip(n))
    time.sleep(0.6)
    try:
        svc.client(timeout=2).post("inlineprobe", ip(3))  # the probe: raises CancelledError
    except OSError:
        pass  # ...and this POST is never answered: the exception went up into circuits' loop
    time.sleep(2)                 # four cool-downs
    r = c.post("inlineprobe", ip(4))
    breaker = svc.service.dispatcher.registry.searchers()[0].bulkhead.breaker
    assert r.status == 200 and r.json["hits"], (r.status, r.json, breaker.state, len(PROBE_CALLS))


class Holding(BaseComponent):
    """Holds a resource it must release: ``close`` (sync), or ``aclose`` on rc-cts's loop."""
    channel = searcher_channel("holding")
    released = []

    @handler("net.ip")
    async def lookup(self, event, *args, **kwargs):
        return None

    async def aclose(self):
        Holding.released.append(asyncio.get_running_loop())


class HoldingSync(BaseComponent):
    channel = searcher_channel("holdingsync")
    released = []

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        return None

    def close(self):
        HoldingSync.released.append(True)


def test_searchers_release_what_they_hold_when_the_service_stops(serve, api):
    Holding.released.clear()
    HoldingSync.released.clear()
    svc = serve([Holding, HoldingSync], {})
    assert svc.client().post("holding", ip(1)).status == 200  # the async loop has started
    svc.stop()
    assert len(Holding.released) == 1 and HoldingSync.released == [True]
