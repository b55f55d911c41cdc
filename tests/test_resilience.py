"""Quotas, breakers and per-searcher caches, end to end: a real service on a free port, spoken
to over HTTP as the platform does, its searchers calling a local fake provider API
(rc_cts.fakeapi, the fake_api fixture) with python-requests."""
from __future__ import annotations

import re
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

from rc_cts.runner import start_in_thread
from rc_cts.tools.client import Client, Response

from .conftest import ROOT
from rc_cts.fakeapi import FakeApi
from .resilience_searchers import (FlakySearcher, LimitedSearcher, LongLivedSearcher, QuotaSearcher,
                                   ShortLivedSearcher, StaleSearcher, SteadySearcher)
from .searchers import HitSearcher


@pytest.fixture
def api(fake_api):
    return fake_api


@pytest.fixture
def serve():
    """``serve(searcher classes, opts sections)`` -> a RunningService with those searchers."""
    running = []

    def start(classes, sections: Dict[str, Dict[str, str]], **options):
        cts = {"sync_wait_secs": "0.5", "first_retry_secs": "1", "later_retry_secs": "1", **options}
        opts = {"webserver": {"server": "127.0.0.1", "port": "0"}, "custom_threat_service": cts, **sections}
        searchers = [cls(opts) if hasattr(cls, "section") else cls() for cls in classes]
        svc = start_in_thread(opts, searchers)
        running.append(svc)
        return svc

    yield start
    for svc in running:
        svc.stop()


def ip(n: int = 1) -> Dict[str, str]:
    return {"type": "net.ip", "value": f"192.0.2.{n}"}


def verdicts(response: Response) -> List[Tuple[str, str]]:
    """(searcher, verdict) for each hit."""
    found = []
    for hit in response.json["hits"]:
        props = {p["name"]: p["value"] for p in hit["props"]}
        found.append((props.get("From", ""), props.get("Verdict", "")))
    return sorted(found)


def poll(client: Client, service: str, rid: str, seconds: float, seen: List[Response]) -> Response:
    """GET as the platform does (here: every half second at most, retry_secs or not)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        r = client.get(service, rid)
        assert r.status in (200, 303), r
        seen.append(r)
        if r.status == 200:
            return r
        time.sleep(min(0.5, float(r.json["retry_secs"])))
    raise AssertionError(f"{rid} still pending after {seconds}s")


def ops(svc) -> Client:
    return Client(svc.url.rsplit("/cts", 1)[0])


# -- 1. quotas -------------------------------------------------------------------------------
def replica_config(api: FakeApi, redis_url: str, prefix: str) -> str:
    return "\n".join([
        "[webserver]", "server = 127.0.0.1", "port = 0", "",
        "[custom_threat_service]", "store = redis", f"redis_url = {redis_url}", f"redis_prefix = {prefix}",
        "sync_wait_secs = 0.2", "first_retry_secs = 1", "later_retry_secs = 1", "lease_secs = 3", "",
        "[custom_threat_service.quota]", "rate_limit = 2/second, 5/minute", "",
        "[quota_api]", f"url = {api.url}", ""])


def most_in_any_span(times: List[float], span: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + span) for i, t in enumerate(times))


@pytest.mark.timeout(300)  # three minute windows: about 125 s
def test_two_windows_hold_across_two_replicas_on_one_redis_and_no_lookup_is_dropped(
        run_cli, api, redis_server, redis_prefix):
    """2/second and 5/minute, shared by two processes: twelve lookups take three minute windows,
    every one completes with its hit, and the API never sees more than either window allows."""
    api.answer("/quota", 200, {"verdict": "listed"})
    cfg = replica_config(api, redis_server.url, redis_prefix)
    replicas = [Client(run_cli(cfg, module="tests.serve_resilience").url + "/cts") for _ in range(2)]
    posted = []
    for n in range(12):
        client = replicas[n % 2]
        r = client.post("quota", ip(n))
        assert r.status in (200, 303), r
        posted.append((client, r))
    seen: List[Response] = []
    results = [r if r.status == 200 else poll(client, "quota", r.json["id"], 200, seen)
               for client, r in posted]
    assert all(verdicts(r) == [("QuotaSearcher", "listed")] for r in results)
    calls = [c.at for c in api.calls("/quota")]
    assert len(calls) == 12                      # each lookup called once: none dropped, none twice
    assert most_in_any_span(calls, 1.0) <= 2
    assert most_in_any_span(calls, 60.0) <= 5
    assert max(calls) - min(calls) >= 120        # the third minute window was waited for
    # the platform is told to come back when the window frees, not every second
    assert max(float(r.json["retry_secs"]) for r in seen if r.status == 303) >= 10


def test_a_429_with_retry_after_pauses_the_searcher_and_the_lookup_completes_after(serve, api):
    api.answer("/limited", 200, {"verdict": "listed"})
    api.answer("/limited", 429, {"error": "too many requests"}, headers={"Retry-After": "2"}, times=1)
    svc = serve([LimitedSearcher], {"limited_api": {"url": api.url}})
    c = svc.client()
    first = c.post("limited", ip())
    assert first.status == 303 and first.json["hits"] == []
    assert first.json["retry_secs"] >= 1   # when the provider said to come back, not the default
    seen: List[Response] = []
    done = poll(c, "limited", first.json["id"], 10, seen)
    assert verdicts(done) == [("LimitedSearcher", "listed")]
    calls = [call.at for call in api.calls("/limited")]
    assert len(calls) == 2 and 1.9 <= calls[1] - calls[0] < 4.0
    # meanwhile another artifact waited too: the pause is the searcher's, not the lookup's
    r = c.post("limited", ip(2))
    assert r.status == 200 and len(api.calls("/limited")) == 3


def test_the_lookup_deadline_does_not_give_up_a_searcher_waiting_for_its_quota(serve, api):
    """lookup_timeout_secs is for searchers that hang, not for one told to wait: the lookup
    completes whole once the provider's pause is over."""
    api.answer("/limited", 200, {"verdict": "listed"})
    api.answer("/limited", 429, {}, headers={"Retry-After": "3"}, times=1)
    svc = serve([LimitedSearcher], {"limited_api": {"url": api.url}}, lookup_timeout_secs="1")
    c = svc.client()
    t0 = time.time()
    first = c.post("limited", ip())
    assert first.status == 303
    time.sleep(1.5 - (time.time() - t0))  # past the deadline: still pending, not ended incomplete
    r = c.get("limited", first.json["id"])
    assert r.status == 303 and r.json["retry_secs"] == 2  # the pause's 1.5 s left, rounded up
    done = poll(c, "limited", first.json["id"], 10, [])
    assert verdicts(done) == [("LimitedSearcher", "listed")] and len(api.calls("/limited")) == 2
    assert time.time() - t0 < 4.5  # when the pause ended, not after an incomplete lookup's backoff


def test_retry_after_as_an_http_date_and_x_ratelimit_remaining_zero(serve, api):
    """An HTTP-date Retry-After pauses too; a 200 that spent the last call (Remaining: 0 with a
    reset) is answered, and the next call waits for the reset."""
    reset = time.time() + 2
    api.answer("/limited", 200, {"verdict": "listed"},
               headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(reset) + 1)}, times=1)
    svc = serve([LimitedSearcher], {"limited_api": {"url": api.url}})
    c = svc.client()
    assert c.post("limited", ip(1)).status == 200
    api.answer("/limited", 200, {"verdict": "later"})
    second = c.post("limited", ip(2))
    assert second.status == 303
    done = poll(c, "limited", second.json["id"], 10, [])
    assert verdicts(done) == [("LimitedSearcher", "later")]
    calls = [call.at for call in api.calls("/limited")]
    assert calls[1] >= int(reset)  # not before the reset the provider gave


def quota_left(svc) -> Dict[str, float]:
    text = ops(svc).request("GET", "/metrics").raw.decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^rc_cts_searcher_quota_remaining{[^}]*window="([^"]+)"[^}]*} (\S+)$', text, re.M)}


def test_the_quota_left_in_each_window_is_a_gauge(serve, api):
    api.answer("/quota", 200, {"verdict": "listed"})
    svc = serve([QuotaSearcher], {"quota_api": {"url": api.url},
                                  "custom_threat_service.quota": {"rate_limit": "2/second, 5/minute"}})
    assert quota_left(svc) == {"2/second": 2, "5/minute": 5}
    for n in range(2):
        assert svc.client().post("quota", ip(n)).status == 200
    assert quota_left(svc) == {"2/second": 0, "5/minute": 3}
    third = svc.client().post("quota", ip(3))  # waits for the second's window
    poll(svc.client(), "quota", third.json["id"], 5, []) if third.status == 303 else None
    assert quota_left(svc)["5/minute"] == 2


# -- 2. the circuit breaker ------------------------------------------------------------------
def breaker_state(svc, service: str = "breaker", name: str = "FlakySearcher") -> Dict:
    r = ops(svc).request("GET", "/readyz")
    assert r.status == 200, r  # ready: other searchers are closed
    return r.json["breakers"][service][name]


def metric(svc, name: str, searcher: str) -> float:
    text = ops(svc).request("GET", "/metrics").raw.decode()
    m = re.search(rf'^{name}{{searcher="{searcher}",service="[^"]+"}} (\S+)$', text, re.M) or \
        re.search(rf'^{name}{{service="[^"]+",searcher="{searcher}"}} (\S+)$', text, re.M)
    assert m, f"{name} for {searcher} not in /metrics"
    return float(m.group(1))


def test_the_breaker_opens_stops_calls_probes_and_closes_while_other_searchers_answer(serve, api):
    api.answer("/flaky", 500, {"error": "down"})
    svc = serve([FlakySearcher, SteadySearcher, HitSearcher], {
        "flaky_api": {"url": api.url},
        "custom_threat_service.breaker": {"breaker_cooldown_secs": "1", "breaker_max_cooldown_secs": "4"}},
        max_retries="2", sync_wait_secs="1")
    c = svc.client()
    fast = []

    def other_service_answers() -> None:
        t0 = time.perf_counter()
        r = c.post("test", {"type": "net.uri", "value": f"http://example.com/{len(fast)}"})
        fast.append(time.perf_counter() - t0)
        assert r.status == 200 and len(r.json["hits"]) == 1

    for n in range(5):  # five failures in a row: the default threshold
        r = c.post("breaker", ip(n))
        assert r.status == 303 and verdicts(r) == [("steady", "")]  # the others' hits at once
        other_service_answers()
    assert len(api.calls("/flaky")) == 5
    assert breaker_state(svc)["state"] == "open"
    assert metric(svc, "rc_cts_searcher_breaker_state", "FlakySearcher") == 2
    open_rids = []
    for n in range(5, 15):  # open: no call reaches the API
        t0 = time.perf_counter()
        r = c.post("breaker", ip(n))
        assert r.status == 303 and verdicts(r) == [("steady", "")]
        assert time.perf_counter() - t0 < 0.5  # answered at once, incomplete
        open_rids.append(r.json["id"])
        other_service_answers()
    assert len(api.calls("/flaky")) == 5
    assert metric(svc, "rc_cts_searcher_breaker_skipped_total", "FlakySearcher") >= 10
    # after max_retries polls the platform gets the other searchers' hits
    r = c.get("breaker", open_rids[0])
    assert r.status == 303
    r = c.get("breaker", open_rids[0])
    assert r.status == 200 and verdicts(r) == [("steady", "")]

    time.sleep(1.2)  # the cool-down: one probe goes out; the API still fails, so it opens again
    assert c.post("breaker", ip(20)).status == 303
    assert len(api.calls("/flaky")) == 6
    state = breaker_state(svc)
    assert state["state"] == "open" and state["trips"] == 2 and state["probe_in_secs"] > 1.2  # 2 s now
    assert c.post("breaker", ip(21)).status == 303 and len(api.calls("/flaky")) == 6

    api.answer("/flaky", 200, {"verdict": "back"})  # the API recovers
    time.sleep(2.2)
    r = c.post("breaker", ip(22))
    assert r.status == 200 and verdicts(r) == [("FlakySearcher", "back"), ("steady", "")]
    assert len(api.calls("/flaky")) == 7
    assert breaker_state(svc)["state"] == "closed"
    assert metric(svc, "rc_cts_searcher_breaker_state", "FlakySearcher") == 0
    assert metric(svc, "rc_cts_searcher_breaker_trips_total", "FlakySearcher") == 2
    assert max(fast) < 1.0  # the other service answered 200 at its own speed throughout


def test_timeouts_open_the_breaker_too(serve, api):
    api.answer("/flaky", 200, {"verdict": "slow"}, delay=3)
    svc = serve([FlakySearcher, SteadySearcher], {"flaky_api": {"url": api.url}, "custom_threat_service.breaker": {
        "breaker_failures": "2", "call_timeout_secs": "0.3"}})
    c = svc.client()
    for n in range(2):
        assert c.post("breaker", ip(n)).status == 303
    assert breaker_state(svc)["state"] == "open"
    t0 = time.perf_counter()
    r = c.post("breaker", ip(9))
    assert r.status == 303 and time.perf_counter() - t0 < 0.3 and len(api.calls("/flaky")) == 2


def test_readyz_fails_only_when_every_searchers_breaker_is_open(serve, api):
    api.answer("/flaky", 500, {"error": "down"})
    svc = serve([FlakySearcher], {"flaky_api": {"url": api.url},
                                  "custom_threat_service.breaker": {"breaker_failures": "2"}})
    c = svc.client()
    for n in range(2):
        assert c.post("breaker", ip(n)).status == 303
    r = ops(svc).request("GET", "/readyz")
    assert r.status == 503 and r.json["failed"] == ["breakers"], r


def test_the_cli_lists_each_searchers_breaker(serve, api):
    api.answer("/flaky", 500, {"error": "down"})
    svc = serve([FlakySearcher, SteadySearcher], {"flaky_api": {"url": api.url}},
                metrics_token="t0ken")
    for n in range(5):
        svc.client().post("breaker", ip(n))
    url = svc.url.rsplit("/cts", 1)[0]
    out = subprocess.run([sys.executable, "-m", "rc_cts.tools.cli", "searchers", "--url", url, "--token", "t0ken"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = {tuple(line.split()[:3]) for line in out.stdout.splitlines()}
    assert ("breaker", "FlakySearcher", "open") in rows and ("breaker", "SteadySearcher", "closed") in rows
    denied = subprocess.run([sys.executable, "-m", "rc_cts.tools.cli", "searchers", "--url", url],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert denied.returncode != 0 and "metrics_token" in denied.stderr + denied.stdout


# -- 3. per-searcher caches ------------------------------------------------------------------
def cache_sections(api: FakeApi, short_key: str = "key-1", **overrides: str) -> Dict[str, Dict[str, str]]:
    sections = {"short_api": {"url": api.url, "api_key": short_key}, "long_api": {"url": api.url, "api_key": "key-2"}}
    if overrides:
        sections["custom_threat_service.cached"] = dict(overrides)
    return sections


def test_each_searcher_keeps_its_own_ttl_a_rescan_calls_only_the_stale_one(serve, api):
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {"verdict": "long"})
    svc = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api))
    c = svc.client()
    first = c.post("cached", ip())
    assert first.status == 200 and verdicts(first) == [("LongLivedSearcher", "long"), ("ShortLivedSearcher", "short")]
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (1, 1)
    again = c.post("cached", ip())  # within both TTLs: nobody is called
    assert verdicts(again) == verdicts(first) and (len(api.calls("/short")), len(api.calls("/long"))) == (1, 1)
    time.sleep(2.1)
    rescan = c.post("cached", ip())
    assert rescan.status == 200 and verdicts(rescan) == verdicts(first)
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (2, 1)
    assert metric(svc, "rc_cts_searcher_cache_hits_total", "LongLivedSearcher") == 2


def test_no_hit_answers_are_cached_for_their_own_shorter_ttl(serve, api):
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {})  # clean: no hit
    svc = serve([ShortLivedSearcher, LongLivedSearcher],
                cache_sections(api, cache_ttl_secs="60", no_hit_ttl_secs="1"))
    c = svc.client()
    assert verdicts(c.post("cached", ip())) == [("ShortLivedSearcher", "short")]
    assert verdicts(c.post("cached", ip())) == [("ShortLivedSearcher", "short")]
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (1, 1)  # the "no hit" was reused
    time.sleep(1.2)
    c.post("cached", ip())
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (1, 2)  # only the no-hit expired


def test_a_changed_api_key_invalidates_that_searchers_answers_alone(serve, api, tmp_path):
    """SQLite keeps the answers across the restart; app.config's TTL override holds for both."""
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {"verdict": "long"})
    store = {"store": "sqlite", "sqlite_path": str(tmp_path / "cts.sqlite3")}
    svc = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api, cache_ttl_secs="600"), **store)
    assert svc.client().post("cached", ip()).status == 200
    svc.stop()
    same = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api, cache_ttl_secs="600"), **store)
    time.sleep(1.2)  # past ShortLived's own 1 s: app.config's 600 s holds
    assert same.client().post("cached", ip()).status == 200
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (1, 1)
    same.stop()
    rekeyed = serve([ShortLivedSearcher, LongLivedSearcher],
                    cache_sections(api, short_key="key-1-rotated", cache_ttl_secs="600"), **store)
    r = rekeyed.client().post("cached", ip())
    assert r.status == 200 and len(r.json["hits"]) == 2
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (2, 1)
    assert api.calls("/short")[-1].headers["key"] == "key-1-rotated"
    text = (tmp_path / "cts.sqlite3").read_bytes()
    assert b"key-1-rotated" not in text and b"key-1" not in text  # a digest is kept, never the key


def test_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background(serve, api):
    count = []

    def numbered(_call):
        count.append(1)
        return {"verdict": f"v{len(count)}"}

    api.answer("/stale", 200, numbered)
    svc = serve([StaleSearcher], {"stale_api": {"url": api.url}})
    c = svc.client()
    assert verdicts(c.post("swr", ip())) == [("StaleSearcher", "v1")]
    api.answer("/stale", 200, numbered, delay=1.0)  # the refresh takes a second
    time.sleep(1.2)  # stale now
    t0 = time.perf_counter()
    r = c.post("swr", ip())
    elapsed = time.perf_counter() - t0
    assert r.status == 200 and verdicts(r) == [("StaleSearcher", "v1")] and elapsed < 0.5
    deadline = time.time() + 5
    while time.time() < deadline and len(count) < 2:
        time.sleep(0.05)
    assert len(count) == 2  # refreshed in the background
    time.sleep(1.3)         # the refresh's answer is stored once the call returns
    assert verdicts(c.post("swr", ip())) in ([("StaleSearcher", "v2")], [("StaleSearcher", "v3")])
    assert metric(svc, "rc_cts_searcher_cache_stale_total", "StaleSearcher") >= 1


def test_provenance_is_shown_only_when_the_operator_asks(serve, api):
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {"verdict": "long"})
    plain = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api))
    for _ in range(2):
        r = plain.client().post("cached", ip())
        assert all(p["name"] != "rc-cts cache" for hit in r.json["hits"] for p in hit["props"])
    shown = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api), cache_provenance="true")
    first = shown.client().post("cached", ip(7))
    assert all(p["name"] != "rc-cts cache" for hit in first.json["hits"] for p in hit["props"])
    time.sleep(1.1)
    r = shown.client().post("cached", ip(7))  # LongLived from the cache, ShortLived called again
    notes = {[p["value"] for p in hit["props"] if p["name"] == "From"][0]:
             [p["value"] for p in hit["props"] if p["name"] == "rc-cts cache"] for hit in r.json["hits"]}
    assert notes["ShortLivedSearcher"] == []
    assert len(notes["LongLivedSearcher"]) == 1 and re.fullmatch(r"cached, age [12] s", notes["LongLivedSearcher"][0])


# -- invalidation ----------------------------------------------------------------------------
def test_the_admin_endpoint_clears_answers_and_asks_for_its_token(serve, api):
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {"verdict": "long"})
    svc = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api, cache_ttl_secs="600"),
                admin_token="s3cret-admin")
    c, admin = svc.client(), ops(svc)
    bearer = {"Authorization": "Bearer s3cret-admin"}
    c.post("cached", ip(1))
    c.post("cached", ip(2))
    assert admin.request("DELETE", "/admin/cache").status == 401
    assert admin.request("DELETE", "/admin/cache", headers={"Authorization": "Bearer wrong"}).status == 401
    assert admin.request("GET", "/admin/cache", headers=bearer).status == 405
    assert admin.request("DELETE", "/admin/cache?colour=red", headers=bearer).status == 400
    assert admin.request("DELETE", "/admin/cache?type=net.ip", headers=bearer).status == 400
    assert admin.request("DELETE", "/admin/cache?service=%ff", headers=bearer).status == 400
    assert admin.request("DELETE", "/admin/cache?service=a&service=b", headers=bearer).status == 400
    assert admin.request("DELETE", "/admin/cache?service=" + "a" * 9000, headers=bearer).status == 400
    r = admin.request("DELETE", "/admin/cache?service=cached&type=net.ip&value=192.0.2.1", headers=bearer)
    assert r.status == 200 and r.json["cleared"] == 2, r
    c.post("cached", ip(1))
    c.post("cached", ip(2))
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (3, 3)  # only ip(1) was called again
    r = admin.request("DELETE", "/admin/cache?service=cached", headers=bearer)
    assert r.status == 200 and r.json["cleared"] == 4
    off = serve([ShortLivedSearcher], cache_sections(api))
    assert ops(off).request("DELETE", "/admin/cache").status == 404  # no credentials configured: off


def test_rc_cts_cache_clear_through_the_store_and_through_the_endpoint(serve, api, tmp_path):
    api.answer("/short", 200, {"verdict": "short"})
    api.answer("/long", 200, {"verdict": "long"})
    db = tmp_path / "cts.sqlite3"
    svc = serve([ShortLivedSearcher, LongLivedSearcher], cache_sections(api, cache_ttl_secs="600"),
                store="sqlite", sqlite_path=str(db), admin_token="tok")
    c = svc.client()
    c.post("cached", ip(1))
    cfg = tmp_path / "app.config"
    cfg.write_text(f"[custom_threat_service]\nstore = sqlite\nsqlite_path = {db}\n")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "rc_cts.tools.cli", "cache", "clear", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=60)

    out = cli("-c", str(cfg), "--service", "cached", "--type", "net.ip", "--value", "192.0.2.1")
    assert out.returncode == 0 and "2 cached answers cleared" in out.stdout, out
    c.post("cached", ip(1))
    assert (len(api.calls("/short")), len(api.calls("/long"))) == (2, 2)
    url = svc.url.rsplit("/cts", 1)[0]
    out = cli("--url", url, "--token", "tok")
    assert out.returncode == 0 and "2 cached answers cleared" in out.stdout, out
    out = cli("--url", url, "--token", "nope")
    assert out.returncode != 0 and "401" in out.stdout + out.stderr
    memory = tmp_path / "memory.config"
    memory.write_text("[custom_threat_service]\nstore = memory\n")
    out = cli("-c", str(memory))
    assert out.returncode != 0 and "--url" in out.stderr  # a memory store lives in the service's process
    out = cli("-c", str(cfg), "--type", "net.ip")
    assert out.returncode != 0 and "--value" in out.stderr
