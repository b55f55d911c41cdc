"""AlienVault OTX against a local stand-in built from its DirectConnect API (v1) reference and
SDK (never the internet): GET /api/v1/indicators/<type>/<value>/general with the key in an
``X-OTX-API-KEY`` header answers the indicator's record with its ``pulse_info``; a wrong key
403; 404 for an unknown indicator, 400 for a value the type does not take; 429 when throttled."""
import time
from urllib.parse import quote

import pytest

from rc_cts.testing import hit_values
from searchers_intel.otx import OTXSearcher

KEY = "766ba1df3ab54db9c0fcbf62ef048c3a04c260e8ca65b6c25346084b7b4719ad"
IP = "185.220.101.7"
IP_PATH = f"/api/v1/indicators/IPv4/{IP}/general"
NO_PULSES = {"count": 0, "pulses": [], "references": [],
             "related": {"alienvault": {"adversary": [], "malware_families": [], "industries": []},
                         "other": {"adversary": [], "malware_families": [], "industries": []}}}
PULSES = {
    "count": 2,
    "pulses": [
        {"id": "65f1c0de8a2b4c1d2e3f4a5b", "name": "Tor exit nodes scanning SSH", "description": "",
         "created": "2024-03-01T08:00:00.000000", "modified": "2024-05-02T10:11:12.123000",
         "tags": ["tor", "ssh", "bruteforce"], "references": [], "public": 1, "adversary": "",
         "targeted_countries": [], "malware_families": [], "attack_ids": [], "industries": [], "TLP": "white",
         "author": {"username": "analyst1"}, "indicator_count": 1200},
        {"id": "6601a2b3c4d5e6f708192a3b", "name": "Mirai C2 infrastructure", "description": "",
         "created": "2024-01-15T12:00:00.000000", "modified": "2024-04-20T09:00:00.000000",
         "tags": ["Mirai", "botnet", "SSH"], "references": [], "public": 1, "adversary": "Mirai operators",
         "targeted_countries": [], "malware_families": [{"id": "Mirai", "display_name": "Mirai", "target": None}],
         "attack_ids": [{"id": "T1071", "name": "Application Layer Protocol",
                         "display_name": "T1071 - Application Layer Protocol"}],
         "industries": [], "TLP": "green", "author": {"username": "analyst2"}, "indicator_count": 85},
    ],
    "references": [],
    "related": {"alienvault": {"adversary": [], "malware_families": [], "industries": []},
                "other": {"adversary": ["Mirai operators"], "malware_families": ["Mirai"], "industries": []}},
}


def record(indicator, kind, type_title, pulse_info=PULSES, **more):
    return {"indicator": indicator, "type": kind, "type_title": type_title, "reputation": 0,
            "base_indicator": {"id": 2417081023, "indicator": indicator, "type": type_title, "title": "",
                               "description": "", "content": "", "access_type": "public", "access_reason": ""},
            "pulse_info": pulse_info, "false_positive": [], "validation": [],
            "sections": ["general", "geo", "reputation", "url_list", "passive_dns", "malware"], **more}


IP_RECORD = record(IP, "IPv4", "IPv4", asn="AS208294 Example Networks", country_code="DE")
WRONG_KEY = {"detail": "Invalid API key."}


def opts(api, key=KEY):
    return {"otx_searcher": {"url": api.url, "api_key": key, "timeout_secs": "2"}}


def keyed(body, accepted=(KEY,)):
    """An indicator path as OTX answers it: the key checked, then the record."""
    return lambda call: (200, body) if call.headers.get("x-otx-api-key") in accepted else (403, WRONG_KEY)


def test_an_address_in_pulses_is_a_hit_from_the_documented_request(cts_lookup, fake_api):
    fake_api.route(IP_PATH, keyed(IP_RECORD))
    [hit] = cts_lookup(OTXSearcher, "net.ip", IP, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "AlienVault OTX" and values["Verdict"] == "in 2 pulses" and values["Pulses"] == 2
    assert values["First seen"] == "2024-01-15T12:00:00.000000"
    assert values["Last seen"] == "2024-05-02T10:11:12.123000"
    assert values["Tags"] == "Mirai, botnet, bruteforce, ssh, tor"        # once each, whatever the case
    assert values["Pulse names"] == "Tor exit nodes scanning SSH, Mirai C2 infrastructure"
    assert values["Malware families"] == "Mirai" and values["Adversaries"] == "Mirai operators"
    assert values["Report"] == f"https://otx.alienvault.com/indicator/ip/{IP}"
    [call] = fake_api.calls(IP_PATH)
    assert call.method == "GET" and call.query == {} and call.headers["x-otx-api-key"] == KEY


@pytest.mark.parametrize("artifact_type, value, path, link", [
    ("net.ip", "2606:4700:4700::1111", "/api/v1/indicators/IPv6/2606%3A4700%3A4700%3A%3A1111/general",
     "https://otx.alienvault.com/indicator/ip/2606%3A4700%3A4700%3A%3A1111"),
    ("net.name", "Evil-Example.com.", "/api/v1/indicators/domain/evil-example.com/general",
     "https://otx.alienvault.com/indicator/domain/evil-example.com"),
    ("net.name", "login.evil-example.com", "/api/v1/indicators/hostname/login.evil-example.com/general",
     "https://otx.alienvault.com/indicator/hostname/login.evil-example.com"),
    ("net.uri", "http://evil-example.com/gate.php?id=7",
     "/api/v1/indicators/url/" + quote("http://evil-example.com/gate.php?id=7", safe="") + "/general",
     "https://otx.alienvault.com/indicator/url/" + quote("http://evil-example.com/gate.php?id=7", safe="")),
    ("hash.md5", "44D88612FEA8A8F36DE82E1278ABB02F", "/api/v1/indicators/file/44d88612fea8a8f36de82e1278abb02f/general",
     "https://otx.alienvault.com/indicator/file/44d88612fea8a8f36de82e1278abb02f"),
    ("hash.sha1", "3395856ce81f2b7382dee72602f798b642f14140",
     "/api/v1/indicators/file/3395856ce81f2b7382dee72602f798b642f14140/general",
     "https://otx.alienvault.com/indicator/file/3395856ce81f2b7382dee72602f798b642f14140"),
    ("hash.sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f",
     "/api/v1/indicators/file/275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f/general",
     "https://otx.alienvault.com/indicator/file/275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
])
def test_each_artifact_type_asks_its_indicator_type(cts_lookup, fake_api, artifact_type, value, path, link):
    fake_api.route(path, keyed(record(value, "x", "x")))
    [hit] = cts_lookup(OTXSearcher, artifact_type, value, opts=opts(fake_api))
    assert hit_values(hit)["Report"] == link and hit_values(hit)["Pulses"] == 2
    assert len(fake_api.calls()) == 1


def test_unknown_and_pulseless_indicators_give_no_hit(cts_lookup, fake_api):
    fake_api.answer("/api/v1/indicators/domain/example.org/general", 200,
                    record("example.org", "domain", "Domain", NO_PULSES,
                           validation=[{"source": "majestic", "message": "Whitelisted domain example.org",
                                        "name": "Whitelisted domain"}]))
    fake_api.answer("/api/v1/indicators/file/" + "0" * 64 + "/general", 404, {"detail": "Not found."})
    fake_api.answer("/api/v1/indicators/url/not%20a%20url/general", 400, {"detail": "Invalid url"})
    assert cts_lookup(OTXSearcher, "net.name", "example.org", opts=opts(fake_api)) == []
    assert cts_lookup(OTXSearcher, "hash.sha256", "0" * 64, opts=opts(fake_api)) == []
    assert cts_lookup(OTXSearcher, "net.uri", "not a url", opts=opts(fake_api)) == []
    for artifact_type, value in (("net.ip", "192.168.1.1"), ("net.ip", "nope"), ("net.name", "localhost"),
                                 ("net.name", "10.0.0.1"), ("hash.md5", "abc"), ("hash.sha1", "z" * 40)):
        assert cts_lookup(OTXSearcher, artifact_type, value, opts=opts(fake_api)) == []  # never sent
    assert len(fake_api.calls()) == 3


def test_no_key_no_lookup(cts_lookup, fake_api):
    fake_api.route(IP_PATH, keyed(IP_RECORD))
    assert cts_lookup(OTXSearcher, "net.ip", IP, opts=opts(fake_api, key="")) == []
    assert fake_api.calls() == []


def test_a_rejected_key_is_an_error_and_the_service_keeps_serving(cts_service, fake_api, caplog):
    caplog.set_level("INFO")
    accepted = {"another key"}
    fake_api.route(IP_PATH, keyed(IP_RECORD, accepted))
    fake_api.route("/api/v1/indicators/domain/evil-example.com/general",
                   keyed(record("evil-example.com", "domain", "Domain"), accepted))
    service = cts_service(OTXSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("otx", {"type": "net.ip", "value": IP})
    assert r.status == 303 and r.json["hits"] == []
    errors = [rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR"]
    assert any("AlienVault OTX rejected the API key (HTTP 403)" in m and "[otx_searcher]" in m for m in errors)
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert IP not in logged and KEY not in logged
    accepted.add(KEY)  # the key is accepted again: lookups resume on the same service
    assert len(c.post("otx", {"type": "net.name", "value": "evil-example.com"}).json["hits"]) == 1


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    # OTX documents no 429 body or headers; with a Retry-After rc-cts waits that long, else its default.
    fake_api.answer(IP_PATH, 200, IP_RECORD)
    fake_api.answer(IP_PATH, 429, {"detail": "Request was throttled."}, headers={"Retry-After": "1"}, times=1)
    t0 = time.time()
    [hit] = cts_lookup(OTXSearcher, "net.ip", IP, opts=opts(fake_api))
    calls = fake_api.calls(IP_PATH)
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Pulses"] == 2


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>OTX</html>", "not JSON"),
    (200, ["not", "a", "record"], "malformed indicator record"),
    (200, {**IP_RECORD, "pulse_info": [1, 2]}, "malformed pulse_info"),
    (200, {**IP_RECORD, "pulse_info": {**PULSES, "count": "2"}}, "malformed pulse count"),
    (200, {**IP_RECORD, "pulse_info": {**PULSES, "pulses": {"a": 1}}}, "malformed pulses list"),
    (200, {**IP_RECORD, "pulse_info": {**PULSES, "pulses": [{"tags": "tor"}]}}, "malformed pulse tags"),
    (504, b"<html>Gateway Time-out</html>", "answered HTTP 504"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    fake_api.answer(IP_PATH, status, body)
    fake_api.answer("/api/v1/indicators/domain/evil-example.com/general", 200,
                    record("evil-example.com", "domain", "Domain"))
    service = cts_service(OTXSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("otx", {"type": "net.ip", "value": IP})
    assert r.status == 303 and r.json["hits"] == []       # incomplete: asked again later, never cached empty
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert IP not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("otx", {"type": "net.name", "value": "evil-example.com"}).json["hits"]) == 1
