"""VirusTotal API v3 against a local stand-in built from its documentation (never the internet):
GET /api/v3/files/<hash>, /urls/<unpadded urlsafe base64>, /domains/<domain>,
/ip_addresses/<ip>, with the key in ``x-apikey``; {"data": {"id", "type", "attributes"}} or
{"error": {"code", "message"}} (404 NotFoundError, 401 WrongCredentialsError, 429
QuotaExceededError)."""
import base64
import time

import pytest

from rc_cts.lookups.limits import SearcherLimits
from rc_cts.lookups.quota import parse_rate_limit
from rc_cts.testing import SearcherFailed, hit_values
from searchers_intel.virustotal import VirusTotalSearcher, url_id

KEY = "vt-public-key-0123456789abcdef"
SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
MD5 = "44d88612fea8a8f36de82e1278abb02f"
URL = "http://malware.example/dl/payload.exe?id=1"
WRONG_KEY = {"error": {"code": "WrongCredentialsError", "message": "Wrong API key"}}
QUOTA = {"error": {"code": "QuotaExceededError", "message": "Quota exceeded"}}


def not_found(what):
    return {"error": {"code": "NotFoundError", "message": f"{what} not found"}}


def stats(malicious=0, suspicious=0, harmless=0, undetected=0, **more):
    return {"malicious": malicious, "suspicious": suspicious, "harmless": harmless,
            "undetected": undetected, "timeout": 0, **more}


def vt_object(kind, object_id, **attributes):
    return {"data": {"id": object_id, "type": kind, "links": {"self": f"https://www.virustotal.com/api/v3/x/{object_id}"},
                     "attributes": attributes}}


FILE = vt_object("file", SHA256, md5=MD5, sha256=SHA256, meaningful_name="eicar.com",
                 type_description="DOS COM", first_submission_date=1148301722, last_submission_date=1718153645,
                 last_analysis_date=1718150000, last_modification_date=1718160000, reputation=-10,
                 tags=["eicar", "attachment", "eicar"],
                 popular_threat_classification={"suggested_threat_label": "virus.eicar/test"},
                 last_analysis_stats=stats(62, 1, 0, 7, **{"type-unsupported": 3, "failure": 0}))
URL_SHA = "a1" * 32     # VirusTotal's id of a URL object: the SHA-256 of the canonical URL
URL_OBJECT = vt_object("url", URL_SHA, url=URL, first_submission_date=1700000000, last_analysis_date=1700086400,
                       reputation=0, tags=["downloads-exe"], last_analysis_stats=stats(0, 2, 60, 20))
DOMAIN = vt_object("domain", "evil.example", first_seen_date=1600000000, last_analysis_date=1700000000,
                   creation_date=1500000000, reputation=-3, tags=["dga"], last_analysis_stats=stats(5, 0, 60, 25))
CLEAN_IP = vt_object("ip_address", "192.0.2.10", as_owner="EXAMPLE-NET", country="US", reputation=0, tags=[],
                     last_analysis_date=1700000000, last_analysis_stats=stats(0, 0, 70, 20))


def checks_key(body):
    """A route answering ``body`` to a call with the right key, 401 WrongCredentialsError else."""
    return lambda call: (200, body) if call.headers.get("x-apikey") == KEY else (401, WRONG_KEY)


def opts(api, key=KEY, **limits):
    options = {"virustotal_searcher": {"url": api.url + "/api/v3", "api_key": key, "timeout_secs": "2"}}
    if limits:
        options["custom_threat_service.virustotal"] = {k: str(v) for k, v in limits.items()}
    return options


def test_a_detected_file_hash_is_a_hit_with_the_documented_request(cts_lookup, fake_api):
    fake_api.route(f"/api/v3/files/{SHA256}", checks_key(FILE))
    [hit] = cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256.upper(), opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "VirusTotal" and values["Verdict"] == "malicious" and values["Score"] == 62
    assert values["Detections"] == "62/70"        # malicious / engines with a verdict
    assert values["First seen"] == "2006-05-22T12:42:02Z" and values["Last seen"] == "2024-06-11T23:53:20Z"
    assert values["Tags"] == "attachment, eicar" and values["Reputation"] == -10
    assert values["Threat label"] == "virus.eicar/test" and values["File type"] == "DOS COM"
    assert values["Report"] == f"https://www.virustotal.com/gui/file/{SHA256}"
    [call] = fake_api.calls()
    assert call.method == "GET" and call.path == f"/api/v3/files/{SHA256}" and call.headers["x-apikey"] == KEY
    assert call.headers["accept"] == "application/json" and call.body == b""


def test_md5_and_sha1_are_looked_up_as_files(cts_lookup, fake_api):
    sha1 = "3395856ce81f2b7382dee72602f798b642f14140"
    fake_api.route(f"/api/v3/files/{MD5}", checks_key(FILE))
    fake_api.route(f"/api/v3/files/{sha1}", checks_key(FILE))
    assert hit_values(cts_lookup(VirusTotalSearcher, "hash.md5", MD5, opts=opts(fake_api))[0])["Score"] == 62
    assert hit_values(cts_lookup(VirusTotalSearcher, "hash.sha1", sha1, opts=opts(fake_api))[0])["Score"] == 62
    # not a hash of its type: no call spent on it
    assert cts_lookup(VirusTotalSearcher, "hash.md5", "not-a-hash", opts=opts(fake_api)) == []
    assert cts_lookup(VirusTotalSearcher, "hash.sha256", MD5, opts=opts(fake_api)) == []
    assert len(fake_api.calls()) == 2


def test_a_url_is_asked_by_its_unpadded_urlsafe_base64_id(cts_lookup, fake_api):
    tricky = "http://malware.example/?a=>>>&b=???"   # '+' and '/' in standard base64, padded
    expected = base64.b64encode(tricky.encode()).decode().replace("+", "-").replace("/", "_").rstrip("=")
    assert url_id(tricky) == expected and "=" not in expected and ("-" in expected or "_" in expected)
    fake_api.route(f"/api/v3/urls/{expected}", checks_key(URL_OBJECT))
    [hit] = cts_lookup(VirusTotalSearcher, "net.uri", tricky, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "suspicious" and values["Score"] == 0 and values["Detections"] == "0/82"
    assert values["First seen"] == "2023-11-14T22:13:20Z" and values["Last seen"] == "2023-11-15T22:13:20Z"
    assert values["Tags"] == "downloads-exe" and values["Reputation"] == 0
    assert values["Report"] == f"https://www.virustotal.com/gui/url/{URL_SHA}"
    assert [c.path for c in fake_api.calls()] == [f"/api/v3/urls/{expected}"]


def test_a_domain_and_an_ip_address(cts_lookup, fake_api):
    fake_api.route("/api/v3/domains/evil.example", checks_key(DOMAIN))
    [hit] = cts_lookup(VirusTotalSearcher, "net.name", "Evil.Example.", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "malicious" and values["Score"] == 5 and values["Tags"] == "dga"
    assert values["First seen"] == "2020-09-13T12:26:40Z" and values["Last seen"] == "2023-11-14T22:13:20Z"
    assert values["Report"] == "https://www.virustotal.com/gui/domain/evil.example"
    bad_ip = vt_object("ip_address", "198.51.100.7", last_analysis_stats=stats(3, 1, 50, 30),
                       last_modification_date=1700000000)
    fake_api.route("/api/v3/ip_addresses/198.51.100.7", checks_key(bad_ip))
    [hit] = cts_lookup(VirusTotalSearcher, "net.ip", " 198.51.100.7 ", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "malicious" and values["Detections"] == "3/84"
    assert values["Last seen"] == "2023-11-14T22:13:20Z" and "First seen" not in values
    assert values["Report"] == "https://www.virustotal.com/gui/ip-address/198.51.100.7"


def test_unknown_and_clean_artifacts_give_no_hit(cts_lookup, fake_api):
    fake_api.answer(f"/api/v3/files/{SHA256}", 404, not_found(f'File "{SHA256}"'))
    fake_api.route("/api/v3/ip_addresses/192.0.2.10", checks_key(CLEAN_IP))
    fake_api.route("/api/v3/domains/fresh.example", checks_key(vt_object("domain", "fresh.example",
                                                                         last_analysis_stats={})))
    assert cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256, opts=opts(fake_api)) == []
    assert cts_lookup(VirusTotalSearcher, "net.ip", "192.0.2.10", opts=opts(fake_api)) == []
    assert cts_lookup(VirusTotalSearcher, "net.name", "fresh.example", opts=opts(fake_api)) == []
    assert cts_lookup(VirusTotalSearcher, "net.ip", "not-an-ip", opts=opts(fake_api)) == []
    assert len(fake_api.calls()) == 3


def test_without_a_key_nothing_is_asked(cts_lookup, fake_api, caplog):
    caplog.set_level("WARNING")
    assert cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256, opts=opts(fake_api, key="")) == []
    assert fake_api.calls() == []
    assert any("[virustotal_searcher] has no api_key" in r.getMessage() for r in caplog.records)


def test_a_rejected_key_is_an_error_and_the_service_keeps_serving(cts_service, fake_api, caplog):
    caplog.set_level("INFO")
    accepted = set()     # the key is refused until VirusTotal accepts it again
    fake_api.route(f"/api/v3/files/{SHA256}",
                   lambda call: (200, FILE) if call.headers.get("x-apikey") in accepted else (401, WRONG_KEY))
    options = opts(fake_api, rate_limit="100/second")
    service = cts_service(VirusTotalSearcher(options), opts=options, max_retries="1")
    c = service.client()
    r = c.post("virustotal", {"type": "hash.sha256", "value": SHA256})
    assert r.status == 303 and r.json["hits"] == []
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any("VirusTotal rejected the API key (HTTP 401): check api_key in [virustotal_searcher]" in m
               for m in errors)
    above_debug = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert SHA256 not in above_debug and KEY not in above_debug
    accepted.add(KEY)   # the account works again: the same running service answers
    fake_api.route(f"/api/v3/files/{MD5}", checks_key(FILE))
    assert len(c.post("virustotal", {"type": "hash.md5", "value": MD5}).json["hits"]) == 1


def test_a_rejected_key_fails_the_lookup(cts_lookup, fake_api):
    fake_api.route(f"/api/v3/files/{SHA256}", checks_key(FILE))
    with pytest.raises(SearcherFailed, match="rejected the API key"):
        cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256, opts=opts(fake_api, key="wrong"), max_retries="0")


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    # A route, not answer(..., times=1) over a route: rc_cts.fakeapi lets the route answer the
    # call that uses up the last timed reply (see the report).
    answered = []

    def quota_spent_once(call):
        answered.append(call)
        return (429, QUOTA, {"Retry-After": "1"}) if len(answered) == 1 else checks_key(FILE)(call)

    fake_api.route(f"/api/v3/files/{SHA256}", quota_spent_once)
    t0 = time.time()
    [hit] = cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256, opts=opts(fake_api))
    calls = fake_api.calls(f"/api/v3/files/{SHA256}")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Score"] == 62


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>gateway</html>", "not JSON"),
    (200, ["not", "an", "object"], "malformed answer"),
    (200, {"data": "x"}, "malformed data object"),
    (200, {"data": {"id": SHA256, "type": "file"}}, "malformed attributes object"),
    (200, vt_object("file", SHA256, last_analysis_stats=[1, 2]), "malformed last_analysis_stats"),
    (200, vt_object("file", SHA256, last_analysis_stats=stats(malicious="9")), "malformed last_analysis_stats count"),
    (200, vt_object("file", SHA256, tags="eicar", last_analysis_stats=stats(3)), "malformed tags list"),
    (200, {"data": {"type": "file", "attributes": {"last_analysis_stats": stats(3)}}}, "malformed data id"),
    (503, {"error": {"code": "TransientError", "message": "try again"}}, "answered HTTP 503"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    fake_api.answer(f"/api/v3/files/{SHA256}", status, body)
    fake_api.route(f"/api/v3/files/{MD5}", checks_key(FILE))
    options = opts(fake_api, rate_limit="100/second")
    service = cts_service(VirusTotalSearcher(options), opts=options, max_retries="1")
    c = service.client()
    r = c.post("virustotal", {"type": "hash.sha256", "value": SHA256})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert SHA256 not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("virustotal", {"type": "hash.md5", "value": MD5}).json["hits"]) == 1


def test_the_declared_quota_is_the_public_apis():
    windows = parse_rate_limit(VirusTotalSearcher.rate_limit)
    assert [(w.limit, w.seconds) for w in windows] == [(4, 60), (500, 86400), (15500, 30 * 86400)]
    limits = SearcherLimits().with_values({"cache_ttl_secs": VirusTotalSearcher.cache_ttl_secs,
                                           "no_hit_ttl_secs": VirusTotalSearcher.no_hit_ttl_secs,
                                           "max_concurrency": VirusTotalSearcher.max_concurrency})
    assert not limits.problems() and limits.ttl_for(True) >= limits.ttl_for(False)
