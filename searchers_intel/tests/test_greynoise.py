"""GreyNoise Community against a local stand-in built from its API reference (never the
internet): GET /v3/community/<ip>, the key (optional) in a ``key`` header, answers the
community record, 404 for an address it has not seen, 400 for one it does not route, 401 for a
wrong key and 429 once the quota is spent."""
import time

import pytest

from rc_cts.testing import hit_values
from searchers_intel.greynoise import GreyNoiseSearcher

KEY = "FFsKsSQauZNgUoWsEHzQp1jSFEDFIuj9G2emd4gjDWpYowqdnLzHSKwmAxuQvYxO"
SCANNER = {"ip": "45.83.66.10", "noise": True, "riot": False, "classification": "malicious",
           "name": "unknown", "link": "https://viz.greynoise.io/ip/45.83.66.10",
           "last_seen": "2024-05-01", "message": "Success"}
SERVICE = {"ip": "1.1.1.1", "noise": False, "riot": True, "classification": "benign",
           "name": "Cloudflare", "link": "https://viz.greynoise.io/riot/1.1.1.1",
           "last_seen": "2024-05-02", "message": "Success"}
NOT_OBSERVED = {"ip": "203.0.113.200", "noise": False, "riot": False,
                "message": "IP not observed scanning the internet or contained in RIOT data set."}
WRONG_KEY = {"message": "Authentication failed. Please check your API key."}
SPENT = {"plan": "community", "rate-limit": "50-lookups/week", "plan_url": "https://greynoise.io/pricing",
         "message": "You have hit your rate limit. Please upgrade your plan at https://greynoise.io/pricing."}


def opts(api, key=KEY):
    return {"greynoise_searcher": {"url": api.url, "api_key": key, "timeout_secs": "2"}}


def community(record, accepted=(KEY,)):
    """/v3/community/<ip> as GreyNoise answers it: a key, if sent, must be a valid one."""
    def answer(call):
        if "key" in call.headers and call.headers["key"] not in accepted:
            return 401, WRONG_KEY
        return (200, record) if record.get("noise") or record.get("riot") else (404, record)
    return answer


def test_a_scanner_is_a_hit_with_its_classification(cts_lookup, fake_api):
    fake_api.route("/v3/community/45.83.66.10", community(SCANNER))
    [hit] = cts_lookup(GreyNoiseSearcher, "net.ip", "45.83.66.10", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "GreyNoise" and values["Verdict"] == "malicious"
    assert values["Last seen"] == "2024-05-01" and values["Tags"] == "internet scanner"
    assert values["Report"] == "https://viz.greynoise.io/ip/45.83.66.10"
    [call] = fake_api.calls("/v3/community/45.83.66.10")
    assert call.method == "GET" and call.query == {} and call.headers["key"] == KEY
    assert call.headers["accept"] == "application/json"


def test_a_business_service_is_a_benign_hit(cts_lookup, fake_api):
    fake_api.route("/v3/community/1.1.1.1", community(SERVICE))
    [hit] = cts_lookup(GreyNoiseSearcher, "net.ip", "1.1.1.1", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "benign" and values["Name"] == "Cloudflare"
    assert values["Tags"] == "business service (RIOT)" and values["Report"] == "https://viz.greynoise.io/riot/1.1.1.1"


def test_unobserved_unroutable_and_non_ipv4_addresses_give_no_hit(cts_lookup, fake_api):
    fake_api.route("/v3/community/203.0.113.200", community(NOT_OBSERVED))  # TEST-NET-3: never sent
    fake_api.answer("/v3/community/8.8.4.4", 404, {**NOT_OBSERVED, "ip": "8.8.4.4"})
    fake_api.answer("/v3/community/9.9.9.9", 400, {"message": "Request is not a valid routable IPv4 address"})
    fake_api.answer("/v3/community/4.4.4.4", 200, {**SCANNER, "ip": "4.4.4.4", "noise": False, "riot": False})
    for value in ("8.8.4.4", "9.9.9.9", "4.4.4.4", "203.0.113.200", "10.0.0.1", "2606:4700::1111", "x"):
        assert cts_lookup(GreyNoiseSearcher, "net.ip", value, opts=opts(fake_api)) == []
    assert sorted(c.path for c in fake_api.calls()) == ["/v3/community/4.4.4.4", "/v3/community/8.8.4.4",
                                                         "/v3/community/9.9.9.9"]


def test_without_a_key_it_asks_keyless_at_the_keyless_quota(cts_lookup, fake_api):
    fake_api.route("/v3/community/45.83.66.10", community(SCANNER))
    searcher = GreyNoiseSearcher(opts(fake_api, key=""))
    assert searcher.rate_limit == "10/day" and GreyNoiseSearcher.rate_limit == "50/7days"
    [hit] = cts_lookup(searcher, "net.ip", "45.83.66.10", opts=opts(fake_api, key=""))
    assert hit_values(hit)["Verdict"] == "malicious"
    assert "key" not in fake_api.calls()[0].headers


def test_a_rejected_key_is_an_error_and_the_service_keeps_serving(cts_service, fake_api, caplog):
    caplog.set_level("INFO")
    accepted = {"another key"}
    fake_api.route("/v3/community/45.83.66.10", community(SCANNER, accepted))
    fake_api.route("/v3/community/1.1.1.1", community(SERVICE, accepted))
    service = cts_service(GreyNoiseSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("greynoise", {"type": "net.ip", "value": "45.83.66.10"})
    assert r.status == 303 and r.json["hits"] == []
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any("GreyNoise rejected the API key (HTTP 401)" in m and "[greynoise_searcher]" in m for m in errors)
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert "45.83.66.10" not in logged and KEY not in logged
    accepted.add(KEY)  # the key is accepted again: lookups resume on the same service
    assert len(c.post("greynoise", {"type": "net.ip", "value": "1.1.1.1"}).json["hits"]) == 1


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    fake_api.answer("/v3/community/45.83.66.10", 200, SCANNER)
    fake_api.answer("/v3/community/45.83.66.10", 429, SPENT, headers={"Retry-After": "1"}, times=1)
    t0 = time.time()
    [hit] = cts_lookup(GreyNoiseSearcher, "net.ip", "45.83.66.10", opts=opts(fake_api))
    calls = fake_api.calls("/v3/community/45.83.66.10")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Verdict"] == "malicious"


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>GreyNoise</html>", "not JSON"),
    (200, ["not", "a", "record"], "malformed community record"),
    (200, {**SCANNER, "classification": 3}, "malformed classification"),
    (500, {"message": "Encountered error while performing request"}, "answered HTTP 500"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    fake_api.answer("/v3/community/45.83.66.10", status, body)
    fake_api.answer("/v3/community/1.1.1.1", 200, SERVICE)
    service = cts_service(GreyNoiseSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("greynoise", {"type": "net.ip", "value": "45.83.66.10"})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert "45.83.66.10" not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("greynoise", {"type": "net.ip", "value": "1.1.1.1"}).json["hits"]) == 1
