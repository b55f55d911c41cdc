"""Shodan InternetDB against a local stand-in built from its documentation (never the internet):
GET /<ip> answers the host record, or 404 {"detail": "No information available"}."""
import time

import pytest

from rc_cts.testing import hit_values
from searchers_intel.internetdb import InternetDBSearcher

RECORD = {"ip": "198.51.100.7", "ports": [443, 22], "vulns": ["CVE-2023-48795"], "tags": ["self-signed"],
          "hostnames": ["host.example"], "cpes": ["cpe:/a:openbsd:openssh"]}
NOT_FOUND = {"detail": "No information available"}


def opts(api):
    return {"internetdb_searcher": {"url": api.url, "timeout_secs": "2"}}


def test_a_host_with_vulnerabilities_is_a_hit(cts_lookup, fake_api):
    fake_api.answer("/198.51.100.7", 200, RECORD)
    [hit] = cts_lookup(InternetDBSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "Shodan InternetDB" and values["Verdict"] == "known vulnerabilities"
    assert values["Open ports"] == "22, 443" and values["Vulnerabilities"] == "CVE-2023-48795"
    assert values["Tags"] == "self-signed" and values["Report"] == "https://www.shodan.io/host/198.51.100.7"
    assert "key" not in {name.lower() for name in fake_api.calls()[0].headers}  # it needs none


def test_unknown_and_clean_addresses_give_no_hit(cts_lookup, fake_api):
    fake_api.answer("/192.0.2.1", 404, NOT_FOUND)
    fake_api.answer("/192.0.2.2", 200, {**RECORD, "ip": "192.0.2.2", "ports": [], "vulns": [], "tags": []})
    assert cts_lookup(InternetDBSearcher, "net.ip", "192.0.2.1", opts=opts(fake_api)) == []
    assert cts_lookup(InternetDBSearcher, "net.ip", "192.0.2.2", opts=opts(fake_api)) == []


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    fake_api.answer("/198.51.100.7", 200, RECORD)
    fake_api.answer("/198.51.100.7", 429, {"detail": "Too Many Requests"}, headers={"Retry-After": "1"}, times=1)
    t0 = time.time()
    [hit] = cts_lookup(InternetDBSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api))
    calls = fake_api.calls("/198.51.100.7")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>gateway</html>", "not JSON"),
    (200, ["not", "a", "record"], "malformed host record"),
    (200, {"ports": "22"}, "malformed ports list"),
    (502, {"detail": "bad gateway"}, "answered HTTP 502"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    fake_api.answer("/203.0.113.9", status, body)
    fake_api.answer("/198.51.100.7", 200, RECORD)
    service = cts_service(InternetDBSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("internetdb", {"type": "net.ip", "value": "203.0.113.9"})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert "203.0.113.9" not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("internetdb", {"type": "net.ip", "value": "198.51.100.7"}).json["hits"]) == 1


def test_its_http_client_is_closed_when_the_service_stops(cts_service, fake_api):
    fake_api.answer("/198.51.100.7", 200, RECORD)
    searcher = InternetDBSearcher(opts(fake_api))
    service = cts_service(searcher, opts=opts(fake_api))
    assert len(service.client().post("internetdb", {"type": "net.ip", "value": "198.51.100.7"}).json["hits"]) == 1
    client = searcher._client
    assert client is not None and not client.is_closed
    service.stop()
    assert client.is_closed and searcher._client is None
