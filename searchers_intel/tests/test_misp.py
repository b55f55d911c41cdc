"""MISP against a local stand-in built from its OpenAPI description (never the internet):
POST /attributes/restSearch with the key in ``Authorization`` and a JSON filter, answering
{"response": {"Attribute": [...]}}, or 403 {"name", "message", "url"} for a rejected key."""
import logging
import time

import httpx
import pytest

from rc_cts.testing import SearcherFailed, hit_values
from searchers_intel.misp import MISP_TYPES, MISPSearcher

KEY = "misp0123456789abcdefghijklmnopqrstuvwxyz"
SEARCH = "/attributes/restSearch"
AUTH_FAILED = "Authentication failed. Please make sure you pass the API key of an API enabled user along in the Authorization header."
FORBIDDEN = {"name": AUTH_FAILED, "message": AUTH_FAILED, "url": SEARCH}


def attribute(id, event_id, type, value, to_ids=True, timestamp="1700000000", first_seen=None, last_seen=None,
              threat_level_id="1", info="Emotet C2 servers", tags=(), category="Network activity"):
    return {"id": str(id), "event_id": str(event_id), "object_id": "0", "object_relation": None,
            "category": category, "type": type, "value": value, "to_ids": to_ids,
            "uuid": f"5e1b0b6a-0000-4000-8000-{id:012d}", "timestamp": timestamp, "distribution": "5",
            "sharing_group_id": "0", "comment": "", "deleted": False, "disable_correlation": False,
            "first_seen": first_seen, "last_seen": last_seen,
            "Event": {"org_id": "1", "distribution": "1", "id": str(event_id), "info": info, "orgc_id": "1",
                      "uuid": f"5e1b0b6a-1111-4000-8000-{event_id:012d}", "date": "2023-11-01",
                      "published": True, "analysis": "2", "threat_level_id": threat_level_id},
            "Tag": [{"id": str(i + 1), "name": name, "colour": "#ffffff", "numerical_value": None,
                     **({"inherited": 1} if name.startswith("tlp:") else {})} for i, name in enumerate(tags)]}


DATA = {
    "198.51.100.7": [
        attribute(11, 42, "ip-dst", "198.51.100.7", first_seen="2023-10-30T08:00:00.000000+00:00",
                  last_seen="2023-11-12T10:00:00.000000+00:00", tags=["tlp:amber", "malware:emotet"]),
        attribute(12, 42, "ip-dst|port", "198.51.100.7|8080", timestamp="1700100000", tags=["kill-chain:c2"]),
        attribute(13, 7, "ip-src", "198.51.100.7", to_ids=False, threat_level_id="3", timestamp="1600000000",
                  info="Scanning activity", tags=["tlp:green"]),
    ],
    "http://malware.example/%41": [   # a wildcard for MISP: it also finds another URL
        attribute(21, 50, "url", "http://malware.example/%41", threat_level_id="4", info="Phishing kit"),
        attribute(22, 51, "url", "http://malware.example/xx41", info="Other"),
    ],
}


def search(call):
    """The instance: the key in Authorization, a JSON filter, attributes whose value matches."""
    if call.headers.get("authorization") != KEY:
        return 403, FORBIDDEN
    wanted = call.json()
    found = [a for a in DATA.get(wanted.get("value"), []) if a["type"] in wanted.get("type", [a["type"]])
             and (not wanted.get("to_ids") or a["to_ids"])]
    return 200, {"response": {"Attribute": found}}, {"X-Result-Count": str(len(found))}


def opts(api, key=KEY, url=None, **extra):
    return {"misp_searcher": {"url": api.url if url is None else url, "api_key": key, "timeout_secs": "2",
                              **{k: str(v) for k, v in extra.items()}}}


def test_an_ip_in_two_events_gives_a_hit_per_event_with_the_documented_request(cts_lookup, fake_api):
    fake_api.route(SEARCH, search)
    hits = cts_lookup(MISPSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api))
    assert len(hits) == 2
    first, second = map(hit_values, hits)     # the most recently changed event first
    assert first["Source"] == "MISP" and first["Verdict"] == "malicious" and first["Threat level"] == "High"
    assert first["First seen"] == "2023-10-30T08:00:00Z"
    assert first["Last seen"] == "2023-11-16T02:00:00Z"       # the attribute changed after its last_seen
    assert first["Tags"] == "kill-chain:c2, malware:emotet, tlp:amber"
    assert first["Event"] == "Emotet C2 servers" and first["Attribute type"] == "ip-dst, ip-dst|port"
    assert first["To ids"] == "yes" and first["Events"] == 2 and first["Category"] == "Network activity"
    assert first["Report"] == f"{fake_api.url}/events/view/42"
    assert second["Verdict"] == "listed" and second["Threat level"] == "Low" and second["To ids"] == "no"
    assert second["First seen"] == "2023-11-01" and second["Last seen"] == "2020-09-13T12:26:40Z"
    assert second["Report"] == f"{fake_api.url}/events/view/7"
    [call] = fake_api.calls(SEARCH)
    assert call.method == "POST" and call.headers["authorization"] == KEY
    assert call.headers["accept"] == "application/json" and call.headers["content-type"] == "application/json"
    assert call.json() == {"value": "198.51.100.7", "type": MISP_TYPES["net.ip"], "returnFormat": "json",
                           "limit": 50, "page": 1, "includeEventTags": True}


def test_every_artifact_type_asks_its_misp_types(cts_lookup, fake_api):
    fake_api.route(SEARCH, search)
    for artifact_type, value in [("net.name", "evil.example"), ("net.uri", "http://x.example/a"),
                                 ("hash.md5", "44d88612fea8a8f36de82e1278abb02f"), ("hash.sha1", "a" * 40),
                                 ("hash.sha256", "b" * 64), ("hash.fuzzy", "3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C"),
                                 ("email.header.sender_address", "billing@evil.example"),
                                 ("threat.report.cve", "CVE-2023-48795")]:
        assert cts_lookup(MISPSearcher, artifact_type, value, opts=opts(fake_api)) == []
    sent = [(c.json()["value"], c.json()["type"]) for c in fake_api.calls(SEARCH)]
    assert sent == [("evil.example", ["domain", "hostname", "domain|ip", "hostname|port"]),
                    ("http://x.example/a", ["url", "uri", "link"]),
                    ("44d88612fea8a8f36de82e1278abb02f", ["md5", "filename|md5", "malware-sample"]),
                    ("a" * 40, ["sha1", "filename|sha1"]), ("b" * 64, ["sha256", "filename|sha256"]),
                    ("3:AXGBicFlgVNhBGcL6wCrFQEv:AXGHsNhxLsr2C", ["ssdeep", "filename|ssdeep"]),
                    ("billing@evil.example", ["email-src", "email", "email-reply-to"]),
                    ("CVE-2023-48795", ["vulnerability"])]


def test_only_exact_values_count_and_ids_only_leaves_context_out(cts_lookup, fake_api):
    fake_api.route(SEARCH, search)
    [hit] = cts_lookup(MISPSearcher, "net.uri", "http://malware.example/%41", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "suspicious" and values["Threat level"] == "Undefined"
    assert values["Report"] == f"{fake_api.url}/events/view/50" and "Events" not in values
    [hit] = cts_lookup(MISPSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api, ids_only="true"))
    assert hit_values(hit)["Report"].endswith("/events/view/42")
    assert fake_api.calls(SEARCH)[-1].json()["to_ids"] is True


def test_unknown_values_give_no_hit(cts_lookup, fake_api):
    fake_api.route(SEARCH, search)
    assert cts_lookup(MISPSearcher, "net.ip", "192.0.2.1", opts=opts(fake_api)) == []
    fake_api.answer(SEARCH, 200, {"response": []})     # what some versions answer for nothing
    assert cts_lookup(MISPSearcher, "net.ip", "192.0.2.1", opts=opts(fake_api)) == []


def test_without_a_url_nothing_is_asked_and_a_warning_says_why(cts_lookup, fake_api, caplog):
    caplog.set_level("WARNING")
    fake_api.route(SEARCH, search)
    assert cts_lookup(MISPSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api, url="")) == []
    assert fake_api.calls() == []
    assert any("[misp_searcher] has no url" in r.getMessage() for r in caplog.records)


def test_verify_tls_goes_to_the_http_client(caplog, monkeypatch):
    caplog.set_level("WARNING")
    searcher = MISPSearcher({"misp_searcher": {"url": "https://misp.lab", "api_key": KEY, "verify_tls": "false"}})
    assert searcher.verify_tls is False
    assert any("verify_tls = false" in r.getMessage() for r in caplog.records)
    assert MISPSearcher({"misp_searcher": {"url": "https://misp.lab", "api_key": KEY}}).verify_tls is True
    made = []
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kwargs: made.append(kwargs) or "client")
    assert searcher.client() == "client" and searcher.client() == "client"   # one client, made once
    [kwargs] = made
    assert kwargs["verify"] is False and kwargs["headers"]["Authorization"] == KEY
    assert kwargs["headers"]["Accept"] == "application/json"


def test_a_rejected_key_is_an_error_and_the_service_keeps_serving(cts_service, fake_api, caplog):
    caplog.set_level("INFO")
    accepted = set()     # the key is refused until an admin gives the user API access again
    fake_api.route(SEARCH, lambda call: search(call) if call.headers.get("authorization") in accepted
                   else (403, FORBIDDEN))
    options = opts(fake_api)
    service = cts_service(MISPSearcher(options), opts=options, max_retries="1")
    c = service.client()
    r = c.post("misp", {"type": "net.ip", "value": "198.51.100.7"})
    assert r.status == 303 and r.json["hits"] == []
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any("MISP rejected the API key (HTTP 403): check api_key in [misp_searcher]" in m for m in errors)
    above_debug = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > logging.DEBUG)
    assert "198.51.100.7" not in above_debug and KEY not in above_debug
    accepted.add(KEY)
    assert len(c.post("misp", {"type": "net.uri", "value": "http://malware.example/%41"}).json["hits"]) == 1


def test_a_rejected_key_fails_the_lookup(cts_lookup, fake_api):
    fake_api.route(SEARCH, search)
    with pytest.raises(SearcherFailed, match="rejected the API key"):
        cts_lookup(MISPSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api, key="wrong"), max_retries="0")


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    answered = []   # a route: rc_cts.fakeapi lets a route answer the call that spends answer(times=1)

    def busy_once(call):
        answered.append(call)
        return (429, {"name": "Too Many Requests", "message": "Too Many Requests", "url": SEARCH},
                {"Retry-After": "1"}) if len(answered) == 1 else search(call)

    fake_api.route(SEARCH, busy_once)
    t0 = time.time()
    hits = cts_lookup(MISPSearcher, "net.ip", "198.51.100.7", opts=opts(fake_api))
    calls = fake_api.calls(SEARCH)
    assert len(hits) == 2 and len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>Login</html>", "not JSON"),            # a reverse proxy's login page
    (200, ["not", "an", "object"], "malformed answer"),
    (200, {"response": "nothing"}, "malformed response object"),
    (200, {"response": {"Attribute": {"id": "1"}}}, "malformed Attribute list"),
    (200, {"response": {"Attribute": ["198.51.100.7"]}}, "malformed attribute"),
    (200, {"response": {"Attribute": [{**DATA["198.51.100.7"][0], "Tag": "tlp:amber"}]}}, "malformed Tag list"),
    (404, {"name": "Not Found", "message": "Not Found", "url": SEARCH}, "answered HTTP 404"),   # a wrong url
    (500, {"name": "An Internal Error Has Occurred.", "message": "An Internal Error Has Occurred.", "url": SEARCH},
     "answered HTTP 500"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    good = {"response": {"Attribute": DATA["http://malware.example/%41"][:1]}}
    fake_api.route(SEARCH, lambda call: (status, body) if call.json()["value"] == "198.51.100.7" else (200, good))
    options = opts(fake_api)
    service = cts_service(MISPSearcher(options), opts=options, max_retries="1")
    c = service.client()
    r = c.post("misp", {"type": "net.ip", "value": "198.51.100.7"})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert "198.51.100.7" not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("misp", {"type": "net.uri", "value": "http://malware.example/%41"}).json["hits"]) == 1


def test_no_quota_is_declared_for_a_self_hosted_instance():
    assert not getattr(MISPSearcher, "rate_limit", "") and MISPSearcher.max_concurrency == 4
    assert MISPSearcher.no_hit_ttl_secs <= MISPSearcher.cache_ttl_secs
