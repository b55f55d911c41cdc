"""AbuseIPDB against a local stand-in built from its APIv2 documentation (never the internet):
GET /check?ipAddress=<ip>&maxAgeInDays=90 with the key in a ``Key`` header answers
{"data": {...}}; a wrong key 401 {"errors": [{"detail", "status"}]}; a spent quota 429 with
Retry-After and X-RateLimit-* headers."""
import time

import pytest

from rc_cts.testing import hit_values
from searchers_intel.abuseipdb import AbuseIPDBSearcher

KEY = "c3k69z846qn30q4r6eo3gsg3urqanuoypyluil350m7iyyw55mx6hd22aaa7xj9y0xbk2ygtrcxuzbh8"
REPORTED = {"ipAddress": "118.25.6.39", "isPublic": True, "ipVersion": 4, "isWhitelisted": False,
            "abuseConfidenceScore": 100, "countryCode": "CN", "usageType": "Data Center/Web Hosting/Transit",
            "isp": "Tencent Cloud Computing (Beijing) Co. Ltd", "domain": "tencent.com",
            "hostnames": [], "isTor": True, "totalReports": 1592, "numDistinctUsers": 297,
            "lastReportedAt": "2024-10-07T10:04:10+00:00"}
CLEAN = {"ipAddress": "54.240.77.24", "isPublic": True, "ipVersion": 4, "isWhitelisted": None,
         "abuseConfidenceScore": 0, "countryCode": "US", "usageType": "Data Center/Web Hosting/Transit",
         "isp": "Amazon Web Services, Inc.", "domain": "amazon.com", "hostnames": ["a77-24.smtp-out.amazonses.com"],
         "isTor": False, "totalReports": 0, "numDistinctUsers": 0, "lastReportedAt": None}
WRONG_KEY = {"errors": [{"detail": "Authentication failed. Your API key is either missing, incorrect, or "
                                   "revoked. Note: The APIv2 key differs from the APIv1 key.", "status": 401}]}
DAILY_LIMIT = {"errors": [{"detail": "Daily rate limit of 1000 requests exceeded for this endpoint. "
                                     "See headers for additional details.", "status": 429}]}


def opts(api, key=KEY):
    return {"abuseipdb_searcher": {"url": api.url, "api_key": key, "timeout_secs": "2"}}


def check_api(records, accepted=(KEY,)):
    """/check as AbuseIPDB answers it: the key checked, then the record of ``ipAddress``."""
    def answer(call):
        if call.headers.get("key") not in accepted:
            return 401, WRONG_KEY
        return 200, {"data": records[call.query["ipAddress"]]}
    return answer


def test_a_reported_address_is_a_hit_from_the_documented_request(cts_lookup, fake_api):
    fake_api.route("/check", check_api({"118.25.6.39": REPORTED}))
    [hit] = cts_lookup(AbuseIPDBSearcher, "net.ip", "118.25.6.39", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "AbuseIPDB" and values["Verdict"] == "malicious" and values["Score"] == 100
    assert values["Last seen"] == "2024-10-07T10:04:10+00:00" and "First seen" not in values
    assert values["Tags"] == "tor exit node" and values["Reports"] == 1592 and values["Distinct reporters"] == 297
    assert values["Country"] == "CN" and values["Usage type"] == "Data Center/Web Hosting/Transit"
    assert values["Report"] == "https://www.abuseipdb.com/check/118.25.6.39"
    [call] = fake_api.calls("/check")
    assert call.method == "GET" and call.query == {"ipAddress": "118.25.6.39", "maxAgeInDays": "90"}
    assert call.headers["key"] == KEY and call.headers["accept"] == "application/json"


@pytest.mark.parametrize("score, reports, verdict", [(40, 3, "suspicious"), (0, 2, "reported")])
def test_the_verdict_follows_the_score_and_reports_alone_make_a_hit(cts_lookup, fake_api, score, reports, verdict):
    fake_api.route("/check", check_api({"118.25.6.39": {**REPORTED, "abuseConfidenceScore": score,
                                                         "totalReports": reports, "isTor": False}}))
    [hit] = cts_lookup(AbuseIPDBSearcher, "net.ip", "118.25.6.39", opts=opts(fake_api))
    assert hit_values(hit)["Verdict"] == verdict and "Tags" not in hit_values(hit)


def test_clean_and_non_public_addresses_give_no_hit(cts_lookup, fake_api):
    fake_api.route("/check", check_api({"54.240.77.24": CLEAN}))
    assert cts_lookup(AbuseIPDBSearcher, "net.ip", "54.240.77.24", opts=opts(fake_api)) == []
    for value in ("10.1.2.3", "192.0.2.1", "::1", "not-an-ip"):  # never sent: it spends the day's quota
        assert cts_lookup(AbuseIPDBSearcher, "net.ip", value, opts=opts(fake_api)) == []
    assert len(fake_api.calls("/check")) == 1


def test_no_key_no_lookup(cts_lookup, fake_api):
    fake_api.route("/check", check_api({"118.25.6.39": REPORTED}))
    assert cts_lookup(AbuseIPDBSearcher, "net.ip", "118.25.6.39", opts=opts(fake_api, key="")) == []
    assert fake_api.calls() == []


def test_a_rejected_key_is_an_error_and_the_service_keeps_serving(cts_service, fake_api, caplog):
    caplog.set_level("INFO")
    accepted = {"another key"}
    fake_api.route("/check", check_api({"118.25.6.39": REPORTED, "185.220.101.7": REPORTED}, accepted))
    service = cts_service(AbuseIPDBSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("abuseipdb", {"type": "net.ip", "value": "118.25.6.39"})
    assert r.status == 303 and r.json["hits"] == []
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any("AbuseIPDB rejected the API key (HTTP 401)" in m and "[abuseipdb_searcher]" in m for m in errors)
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert "118.25.6.39" not in logged and KEY not in logged
    accepted.add(KEY)  # the key is good again (say, renewed on AbuseIPDB's side): lookups resume
    assert len(c.post("abuseipdb", {"type": "net.ip", "value": "185.220.101.7"}).json["hits"]) == 1


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    fake_api.answer("/check", 200, {"data": REPORTED})
    fake_api.answer("/check", 429, DAILY_LIMIT, times=1, headers={
        "Retry-After": "1", "X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(time.time()) + 1)})
    t0 = time.time()
    [hit] = cts_lookup(AbuseIPDBSearcher, "net.ip", "118.25.6.39", opts=opts(fake_api))
    calls = fake_api.calls("/check")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Score"] == 100


def test_a_value_it_refuses_is_no_hit_and_no_failure(cts_lookup, fake_api):
    """422 is about the value, not the provider: no hit, and nothing for the breaker to count."""
    fake_api.answer("/check", 422, {"errors": [{"detail": "The ip address must be a valid IPv4 or IPv6 address.",
                                                "status": 422, "source": {"parameter": "ipAddress"}}]})
    assert cts_lookup(AbuseIPDBSearcher, "net.ip", "118.25.6.39", opts=opts(fake_api)) == []


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>AbuseIPDB</html>", "not JSON"),
    (200, ["not", "a", "record"], "malformed answer"),
    (200, {"errors": []}, "malformed check record"),
    (200, {"data": {**REPORTED, "abuseConfidenceScore": "high"}}, "malformed abuseConfidenceScore"),
    (200, {"data": {**REPORTED, "totalReports": [1]}}, "malformed totalReports"),
    (503, b"Service Unavailable", "answered HTTP 503"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    fake_api.route("/check", lambda call: (status, body) if call.query["ipAddress"] == "118.25.6.39"
                   else (200, {"data": CLEAN}))
    service = cts_service(AbuseIPDBSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("abuseipdb", {"type": "net.ip", "value": "118.25.6.39"})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert "118.25.6.39" not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    r = c.post("abuseipdb", {"type": "net.ip", "value": "54.240.77.24"})
    assert r.status == 200 and r.json["hits"] == []       # answered, as the next lookups are
