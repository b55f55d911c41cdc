"""The reputation API searcher against a local fake upstream (never the internet)."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rc_cts.testing import SearcherFailed
from searchers_example.reputation import ReputationSearcher

KEY = "test-key"


class FakeApi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so session reuse shows

    def do_GET(self):
        server = self.server
        with server.lock:
            server.calls.append((self.path, time.monotonic(), self.client_address[1]))
            count = sum(1 for p, _, _ in server.calls if p == self.path)
        if self.headers.get("X-API-Key") != KEY:
            return self.answer(401, {"error": "bad key"})
        kind, value = self.path.strip("/").split("/")[-2:]
        if value == "192.0.2.1":
            return self.answer(200, {"score": 87, "verdict": "malicious", "categories": ["botnet", "c2"],
                                     "link": "https://rep.example/ip/192.0.2.1"})
        if value == "192.0.2.2":
            return self.answer(200, {"score": 0, "verdict": "clean"})
        if value == "192.0.2.3":  # rate limited once, then fine
            if count == 1:
                return self.answer(429, {"error": "slow down"}, {"Retry-After": "0.2"})
            return self.answer(200, {"score": 40, "verdict": "suspicious"})
        if value == "192.0.2.4":
            return self.answer(503, {"error": "maintenance"})
        if value == "192.0.2.6":
            time.sleep(1.0)
            return self.answer(200, {"score": 1})
        if value.startswith("10.9."):
            return self.answer(200, {"score": 5, "verdict": "low"})
        return self.answer(404, {"error": "no data"})

    def answer(self, status, payload, headers=None):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeApi)
    server.calls, server.lock = [], threading.Lock()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def opts(api, **extra):
    section = {"url": f"http://127.0.0.1:{api.server_address[1]}/v1", "api_key": KEY, "timeout_secs": "0.5",
               "rate_limit_per_sec": "100", "max_attempts": "2", "backoff_secs": "0.05"}
    section.update({k: str(v) for k, v in extra.items()})
    return {"reputation_searcher": section}


def calls_to(api, value):
    return [c for c in api.calls if c[0].endswith("/" + value)]


def test_hit_with_score_verdict_categories_and_report_link(cts_lookup, api):
    [hit] = cts_lookup(ReputationSearcher, "net.ip", "192.0.2.1", opts=opts(api))
    assert hit["props"] == [{"type": "number", "name": "Score", "value": 87},
                            {"type": "string", "name": "Verdict", "value": "malicious"},
                            {"type": "string", "name": "Categories", "value": "botnet, c2"},
                            {"type": "uri", "name": "Report", "value": "https://rep.example/ip/192.0.2.1"}]
    assert api.calls[0][0] == "/v1/ip/192.0.2.1"


def test_no_data_and_clean_are_no_hits(cts_lookup, api):
    assert cts_lookup(ReputationSearcher, "net.name", "unknown.test", opts=opts(api)) == []
    assert cts_lookup(ReputationSearcher, "net.ip", "192.0.2.2", opts=opts(api)) == []


def test_values_are_escaped_in_the_path(cts_lookup, api):
    cts_lookup(ReputationSearcher, "net.uri", "http://x.test/a b?c=1", opts=opts(api))
    assert api.calls[-1][0] == "/v1/url/http%3A%2F%2Fx.test%2Fa%20b%3Fc%3D1"


def test_429_is_retried_after_retry_after(cts_lookup, api):
    [hit] = cts_lookup(ReputationSearcher, "net.ip", "192.0.2.3", opts=opts(api))
    assert hit["props"][0]["value"] == 40
    first, second = calls_to(api, "192.0.2.3")
    assert second[1] - first[1] >= 0.2


def test_persistent_5xx_is_incomplete_and_rc_cts_asks_again_later(cts_lookup, api):
    assert cts_lookup(ReputationSearcher, "net.ip", "192.0.2.4", opts=opts(api), max_retries=2,
                      incomplete_retry_secs=0.05) == []
    assert len(calls_to(api, "192.0.2.4")) == 2 * 3   # max_attempts per run, first run + 2 retries


def test_timeouts_are_retried_then_incomplete(cts_lookup, api):
    t0 = time.monotonic()
    assert cts_lookup(ReputationSearcher, "net.ip", "192.0.2.6", opts=opts(api), max_retries=0) == []
    assert len(calls_to(api, "192.0.2.6")) == 2
    assert time.monotonic() - t0 < 3


def test_rejected_key_is_an_error(cts_lookup, api):
    with pytest.raises(SearcherFailed, match="rejected the API key"):
        cts_lookup(ReputationSearcher, "net.ip", "192.0.2.1", opts=opts(api, api_key="wrong"))


def test_rate_limit_and_connection_reuse(cts_service, api):
    service = cts_service(ReputationSearcher(opts(api, rate_limit_per_sec=10)), opts=opts(api), workers=8)
    c = service.client()
    threads = [threading.Thread(target=c.post, args=("reputation", {"type": "net.ip", "value": f"10.9.0.{i}"}))
               for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    times = sorted(t for _, t, _ in api.calls)
    assert len(times) == 6
    assert times[-1] - times[0] >= 0.45            # 6 calls at 10/s span at least 0.5 s
    assert len({port for _, _, port in api.calls}) < 6   # kept-alive connections were reused


def test_unconfigured_searcher_answers_no_hits(cts_lookup):
    assert cts_lookup(ReputationSearcher, "net.ip", "192.0.2.1") == []
