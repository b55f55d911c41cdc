"""Health and metrics for operators, through a real server: /healthz, /readyz (searchers loaded,
store reachable, not shutting down) and /metrics (Prometheus text), outside the urlbase; the
probes need no credentials, /metrics may."""
import base64
import http.client
import json
import signal
import threading
import time
from urllib.parse import urlsplit

import pytest
from circuits import BaseComponent, handler
from prometheus_client.parser import text_string_to_metric_families

from rc_cts import Hit, StringProp, searcher_channel
from rc_cts.tools.client import Client

from .searchers import FailingSearcher, FindingSearcher, HitSearcher

RELEASE = threading.Event()  # lets the stuck searcher's thread go at the end of a test


class StuckSearcher(BaseComponent):
    """/stuck: blocks until released; its calls time out after 0.3 s."""
    channel = searcher_channel("stuck")
    call_timeout_secs = 0.3

    @handler("net.name")
    def name(self, event, *args, **kwargs):
        RELEASE.wait(10)
        return Hit(StringProp(name="Late", value="yes"))


class LimitedSearcher(BaseComponent):
    """/limited: one call a minute; a second lookup waits for the quota."""
    channel = searcher_channel("limited")
    rate_limit = "1/minute"

    @handler("net.name")
    def name(self, event, *args, **kwargs):
        return Hit(StringProp(name="Limited", value=event.artifact["value"]))


@pytest.fixture(autouse=True)
def _release_stuck_threads():
    RELEASE.clear()
    yield
    RELEASE.set()


def ops(svc, **kwargs) -> Client:
    """A client for the paths outside the urlbase (http://host:port/...)."""
    return Client(svc.service.http.url, **kwargs)


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def metrics(client, **headers):
    r = client.request("GET", "/metrics", headers=headers)
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.raw.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    r = fn(*args, **kwargs)
    return time.perf_counter() - t0, r


# -- /healthz and /readyz ------------------------------------------------------------------
def test_healthz_and_readyz_need_no_credentials_the_service_urls_still_do(start_service):
    svc = start_service([HitSearcher(), FailingSearcher(), FindingSearcher()],
                        auth_user="soar", auth_password="s3cret")
    c = ops(svc)
    r = c.request("GET", "/healthz")
    assert r.status == 200 and r.json == {"status": "ok"}
    r = c.request("GET", "/readyz")
    assert r.status == 200 and r.json["status"] == "ready"
    assert r.json["checks"] == {"searchers": "ok", "breakers": "ok", "store": "ok", "shutdown": "ok"}
    assert "services" not in r.json  # service names only for those who may read /metrics
    assert c.request("HEAD", "/healthz").status == 200
    assert c.request("POST", "/healthz", b"{}").status == 405
    anonymous = svc.client()
    assert anonymous.options("test").status == 401
    assert anonymous.post("test", {"type": "net.uri", "value": "http://x"}).status == 401
    assert anonymous.get("test", "00000000-0000-0000-0000-000000000000").status == 401
    assert svc.client(user="soar", password="s3cret").options("test").status == 200
    r = c.request("GET", "/readyz", headers={"Authorization": basic("soar", "s3cret")})
    assert r.json["services"] == {"mixed": ["FailingSearcher", "FindingSearcher"], "test": ["HitSearcher"]}


def test_readyz_lists_services_and_searchers_when_auth_is_off(start_service):
    svc = start_service([HitSearcher(), HitSearcher(), StuckSearcher()])
    r = ops(svc).request("GET", "/readyz")
    assert r.status == 200
    assert r.json["services"] == {"stuck": ["StuckSearcher"], "test": ["HitSearcher", "HitSearcher#2"]}
    assert svc.client().options("test").status == 200  # the urlbase is unchanged


def test_readyz_is_503_without_searchers(start_service):
    svc = start_service([])
    r = ops(svc).request("GET", "/readyz")
    assert r.status == 503 and r.json["status"] == "not ready"
    assert r.json["failed"] == ["searchers"] and r.json["checks"]["store"] == "ok"
    assert ops(svc).request("GET", "/healthz").status == 200


def test_readyz_is_503_while_a_store_does_not_answer(start_service, redis_server, redis_prefix):
    svc = start_service([HitSearcher()], store="redis", redis_url=redis_server.url, redis_prefix=redis_prefix)
    c = ops(svc)
    assert c.request("GET", "/readyz").status == 200
    redis_server.proc.send_signal(signal.SIGSTOP)  # answers nothing, refuses nothing
    try:
        elapsed, r = timed(c.request, "GET", "/readyz")
        assert r.status == 503 and elapsed < 2.5, (elapsed, r)
        assert r.json["failed"] == ["store"] and r.json["checks"]["store"] == "unavailable"
        assert "redis" not in r.raw.decode().lower()  # nothing about where the store is
        elapsed, r = timed(c.request, "GET", "/healthz")  # never waits on the store
        assert r.status == 200 and elapsed < 0.5
        elapsed, r = timed(c.request, "GET", "/readyz")   # each probe within the deadline
        assert r.status == 503 and elapsed < 2.5
        assert value(metrics(c), "rc_cts_store_errors_total") >= 2
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    deadline = time.time() + 10
    while time.time() < deadline:  # ready again by itself
        r = c.request("GET", "/readyz")
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200 and r.json["failed"] == []


def test_readyz_is_503_once_sigterm_starts_the_shutdown(run_cli, tmp_path):
    cfg = "\n".join(["[webserver]", "server = 127.0.0.1", "port = 0", "",
                     "[custom_threat_service]", "sync_wait_secs = 0", "shutdown_grace_secs = 10", "",
                     "[count_searcher]", f"log = {tmp_path / 'runs.log'}", ""])
    p = run_cli(cfg, module="tests.serve")
    u = urlsplit(p.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)  # kept open: a load balancer's

    def readyz():
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        return r.status, json.loads(r.read())

    assert readyz()[0] == 200
    assert Client(p.url + "/cts").post("count", {"type": "net.name", "value": "busy:2"}).status == 303
    time.sleep(0.2)  # the call runs: the shutdown waits for it
    p.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 5
    status, body = readyz()
    while status == 200 and time.time() < deadline:
        time.sleep(0.05)
        status, body = readyz()
    assert status == 503 and body["failed"] == ["shutdown"], body
    assert body["checks"]["shutdown"] == "shutting down"
    conn.close()
    p.proc.wait(15)
    assert p.proc.returncode == 0


# -- /metrics ------------------------------------------------------------------------------
def test_metrics_after_a_known_sequence_of_lookups(start_service):
    svc = start_service([HitSearcher(), FailingSearcher(), FindingSearcher(), StuckSearcher(),
                         LimitedSearcher()], sync_wait_secs=1)
    c = svc.client()
    assert c.options("test").status == 200
    hit = c.post("test", {"type": "net.uri", "value": "http://a.example"})
    assert hit.status == 200 and hit.json["hits"]
    cached = c.post("test", {"type": "net.uri", "value": "http://a.example"})    # from the store
    assert cached.status == 200 and cached.json["hits"] == hit.json["hits"]
    assert c.post("mixed", {"type": "net.uri", "value": "http://b.example"}).status == 303  # one failed
    assert c.post("stuck", {"type": "net.name", "value": "c.example"}).status == 303    # timed out
    assert c.post("limited", {"type": "net.name", "value": "d.example"}).status == 200
    assert c.post("limited", {"type": "net.name", "value": "e.example"}).status == 303  # quota spent
    assert c.get("test", "no-such-id").status == 200
    assert c.request("POST", "/test", b"{not json", {"Content-Type": "application/json"}).status == 400
    assert c.options("nope").status == 404

    metrics(ops(svc))
    m = metrics(ops(svc))  # the first scrape is not counted among the requests
    assert value(m, "rc_cts_http_requests_total", method="OPTIONS", status="200") == 1
    assert value(m, "rc_cts_http_requests_total", method="POST", status="200") == 3
    assert value(m, "rc_cts_http_requests_total", method="POST", status="303") == 3
    assert value(m, "rc_cts_http_requests_total", method="GET", status="200") == 1
    assert value(m, "rc_cts_http_requests_total", method="POST", status="400") == 1
    assert value(m, "rc_cts_http_requests_total", method="OPTIONS", status="404") == 1
    assert value(m, "rc_cts_lookups_started_total") == 5
    assert value(m, "rc_cts_lookups_completed_total") == 2       # whole: the hit, the first limited
    assert value(m, "rc_cts_lookups_incomplete_total") == 2      # the failing and the stuck searcher
    assert value(m, "rc_cts_lookups_active") == 1                # waiting for the quota
    assert value(m, "rc_cts_post_requests_total") == 6
    assert value(m, "rc_cts_post_cache_hits_total") == 1
    assert value(m, "rc_cts_post_cache_hit_ratio") == pytest.approx(1 / 6)
    assert value(m, "rc_cts_store_errors_total") == 0
    assert value(m, "rc_cts_http_connections") >= 1              # this scrape's

    def of(name, service, searcher):
        return value(m, name, service=service, searcher=searcher)

    assert of("rc_cts_searcher_calls_total", "test", "HitSearcher") == 1
    assert of("rc_cts_searcher_failures_total", "test", "HitSearcher") == 0
    assert of("rc_cts_searcher_calls_total", "mixed", "FailingSearcher") == 1
    assert of("rc_cts_searcher_failures_total", "mixed", "FailingSearcher") == 1
    assert of("rc_cts_searcher_failures_total", "mixed", "FindingSearcher") == 0
    assert of("rc_cts_searcher_timeouts_total", "stuck", "StuckSearcher") == 1
    assert of("rc_cts_searcher_abandoned", "stuck", "StuckSearcher") == 1  # its thread still blocks
    assert of("rc_cts_searcher_in_flight", "stuck", "StuckSearcher") == 0
    assert of("rc_cts_searcher_calls_total", "limited", "LimitedSearcher") == 1
    assert of("rc_cts_searcher_deferrals_total", "limited", "LimitedSearcher") == 1
    assert of("rc_cts_searcher_queued", "limited", "LimitedSearcher") == 1
    assert of("rc_cts_searcher_timeouts_total", "test", "HitSearcher") == 0

    hist = "rc_cts_searcher_call_duration_seconds"
    assert of(hist + "_count", "test", "HitSearcher") == 1
    assert of(hist + "_count", "stuck", "StuckSearcher") == 1
    assert of(hist + "_sum", "stuck", "StuckSearcher") == pytest.approx(0.3)
    buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m.items()
                     if k[0] == hist + "_bucket" and dict(k[1])["searcher"] == "StuckSearcher")
    assert [v for le, v in buckets if le < 0.5] == [0] * sum(le < 0.5 for le, _ in buckets)
    assert [v for le, v in buckets if le >= 0.5] == [1] * sum(le >= 0.5 for le, _ in buckets)
    assert any(k[0].startswith("process_") for k in m)  # the process's own (memory, fds)


def test_metrics_use_the_service_credentials_when_auth_is_on(start_service):
    svc = start_service([HitSearcher()], auth_user="soar", auth_password="s3cret")
    c = ops(svc)
    r = c.request("GET", "/metrics")
    assert r.status == 401 and "basic" in r.headers["www-authenticate"].lower()
    assert c.request("GET", "/metrics", headers={"Authorization": basic("soar", "wrong")}).status == 401
    assert c.request("GET", "/metrics", headers={"Authorization": "Bearer s3cret"}).status == 401
    m = metrics(c, Authorization=basic("soar", "s3cret"))
    assert value(m, "rc_cts_lookups_started_total") == 0


def test_metrics_token_is_a_bearer_token_of_its_own(start_service):
    svc = start_service([HitSearcher()], auth_user="soar", auth_password="s3cret", metrics_token="m3trics")
    c = ops(svc)
    assert c.request("GET", "/metrics").status == 401
    r = c.request("GET", "/metrics", headers={"Authorization": "Bearer wrong"})
    assert r.status == 401 and "bearer" in r.headers["www-authenticate"].lower()
    assert c.request("GET", "/metrics", headers={"Authorization": "Bearer m3trics-and-more"}).status == 401
    assert c.request("GET", "/metrics", headers={"Authorization": basic("soar", "s3cret")}).status == 401
    metrics(c, Authorization="Bearer m3trics")
    r = c.request("GET", "/readyz", headers={"Authorization": "Bearer m3trics"})
    assert r.status == 200 and r.json["services"] == {"test": ["HitSearcher"]}
    assert c.request("GET", "/healthz").status == 200
    assert svc.client(user="soar", password="s3cret").options("test").status == 200


def test_metrics_token_without_service_auth(start_service):
    svc = start_service([HitSearcher()], metrics_token="m3trics")
    c = ops(svc)
    assert c.request("GET", "/metrics").status == 401
    metrics(c, Authorization="Bearer m3trics")
    assert svc.client().options("test").status == 200  # the service itself stays open
