"""abuse.ch ThreatFox against a local stand-in built from its documentation (never the internet):
POST /api/v1/ with a JSON body ({"query": "search_ioc", "search_term"} or {"query": "search_hash",
"hash"}) and the Auth-Key header; 401 without one, 403 {"query_status": "unknown_auth_key"} for a
key abuse.ch does not know."""
import configparser
import json
import time

import pytest

from rc_cts.testing import hit_values
from searchers_intel.threatfox import CONFIG, ThreatFoxSearcher

from abusech_api import KEY, abusech_route, check_a_rejected_key
PATH = "/api/v1/"
MD5 = "2151c4b970eff0071948dbbc19066aa4"
SHA256 = "923fa80da84e45636a62f779913559a07420a1c6e21f093d87ddfe04bda683c4"


def ioc(id_, value, ioc_type, threat_type="botnet_cc", confidence=50, first="2020-12-08 13:36:27 UTC",
        last=None, tags=("exe",), malware="Dridex"):
    return {"id": str(id_), "ioc": value, "threat_type": threat_type,
            "threat_type_desc": "Indicator that identifies a botnet command&control server (C&C)",
            "ioc_type": ioc_type, "ioc_type_desc": "", "malware": "win.dridex", "malware_printable": malware,
            "malware_alias": None, "malware_malpedia": "https://malpedia.caad.fkie.fraunhofer.de/details/win.dridex",
            "confidence_level": confidence, "first_seen": first, "last_seen": last, "reporter": "abuse_ch",
            "reference": None, "tags": list(tags) if tags is not None else None,
            "malware_samples": [{"time_stamp": "2020-12-08 13:40:00 UTC", "md5_hash": MD5, "sha256_hash": SHA256,
                                 "malware_bazaar": f"https://bazaar.abuse.ch/sample/{SHA256}/"}]}


SEARCHES = {
    "139.180.203.104": [ioc(41, "139.180.203.104:443", "ip:port", confidence=75, last="2021-01-02 10:00:00 UTC",
                            tags=("CobaltStrike",), malware="Cobalt Strike"),
                        ioc(40, "139.180.203.104:8080", "ip:port", confidence=50, tags=("cs",),
                            first="2020-11-01 08:00:00 UTC", malware="Cobalt Strike"),
                        ioc(39, "139.180.203.10:443", "ip:port", confidence=100)],   # contains the value only
    "ntpjson.monster": [ioc(38, "ntpjson.monster", "domain", tags=("Magecart",), malware="magecart")],
    "http://gaga.com/gate.php": [ioc(37, "http://gaga.com/gate.php", "url", threat_type="payload_delivery")],
    "192.0.2.50": [ioc(36, "192.0.2.500:80", "ip:port")],                            # no IOC on the IP itself
}
HASHES = {MD5: [ioc(35, "gaga.com", "domain", confidence=100, tags=("exe", "test")),
                ioc(34, "susu.com", "domain", confidence=75, tags=None)]}


def opts(api, key=KEY):
    return {"threatfox_searcher": {"url": api.url, "api_key": key, "timeout_secs": "2"}}


def threatfox(api, accepted=lambda: KEY, once=None):
    """The documented endpoint, answering by the JSON query as ThreatFox does (``once``: see
    abusech_route)."""

    def answer(call):
        body = call.json()
        if body.get("query") == "search_ioc":
            term = body.get("search_term") or ""
            if " " in term or not term:
                return 200, {"query_status": "illegal_search_term", "data": "Your search term is not valid"}
            found = SEARCHES.get(term)
        elif body.get("query") == "search_hash":
            if len(body.get("hash") or "") not in (32, 64):
                return 200, {"query_status": "illegal_hash", "data": "The hash you provided is not valid"}
            found = HASHES.get(body["hash"])
        else:
            return 200, {"query_status": "unknown_query"}
        if not found:
            return 200, {"query_status": "no_result", "data": "Your search did not yield any results"}
        return 200, {"query_status": "ok", "data": found}

    api.route(PATH, abusech_route(answer, accepted, once))
    return api


def test_an_ip_with_c2_iocs_is_a_hit_asked_as_documented(cts_lookup, fake_api):
    threatfox(fake_api)
    [hit] = cts_lookup(ThreatFoxSearcher, "net.ip", "139.180.203.104", opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "ThreatFox" and values["Verdict"] == "botnet_cc" and values["Score"] == 75
    assert values["First seen"] == "2020-11-01 08:00:00 UTC" and values["Last seen"] == "2021-01-02 10:00:00 UTC"
    assert values["Tags"] == "CobaltStrike, cs" and values["Malware"] == "Cobalt Strike"
    assert values["Indicators"] == "139.180.203.104:443, 139.180.203.104:8080"   # not 139.180.203.10:443
    assert values["Report"] == "https://threatfox.abuse.ch/ioc/41/"
    [call] = fake_api.calls(PATH)
    assert call.method == "POST" and call.headers["auth-key"] == KEY
    assert call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == {"query": "search_ioc", "search_term": "139.180.203.104"}


@pytest.mark.parametrize("artifact_type, value, verdict, link", [
    ("net.name", "ntpjson.monster", "botnet_cc", "https://threatfox.abuse.ch/ioc/38/"),
    ("net.uri", "http://gaga.com/gate.php", "payload_delivery", "https://threatfox.abuse.ch/ioc/37/"),
])
def test_a_domain_or_url_ioc_is_a_hit(cts_lookup, fake_api, artifact_type, value, verdict, link):
    threatfox(fake_api)
    [hit] = cts_lookup(ThreatFoxSearcher, artifact_type, value, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == verdict and values["Score"] == 50 and values["Report"] == link
    assert values["First seen"] == "2020-12-08 13:36:27 UTC" and "Last seen" not in values
    assert fake_api.calls(PATH)[0].json() == {"query": "search_ioc", "search_term": value}


def test_a_hash_whose_sample_has_iocs_is_a_hit_asked_with_search_hash(cts_lookup, fake_api):
    threatfox(fake_api)
    [hit] = cts_lookup(ThreatFoxSearcher, "hash.md5", MD5, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "botnet_cc" and values["Score"] == 100 and values["Tags"] == "exe, test"
    assert values["Associated indicators"] == "gaga.com, susu.com" and values["Malware"] == "Dridex"
    assert values["Report"] == "https://threatfox.abuse.ch/ioc/35/"
    [call] = fake_api.calls(PATH)
    assert call.json() == {"query": "search_hash", "hash": MD5} and call.headers["auth-key"] == KEY


def test_unknown_invalid_and_merely_similar_values_give_no_hit(cts_lookup, fake_api, caplog):
    caplog.set_level("INFO")
    threatfox(fake_api)
    assert cts_lookup(ThreatFoxSearcher, "net.ip", "192.0.2.1", opts=opts(fake_api)) == []          # no_result
    assert cts_lookup(ThreatFoxSearcher, "hash.sha256", SHA256, opts=opts(fake_api)) == []          # no_result
    assert cts_lookup(ThreatFoxSearcher, "net.ip", "192.0.2.50", opts=opts(fake_api)) == []         # 192.0.2.500 only
    assert cts_lookup(ThreatFoxSearcher, "net.name", "bad name", opts=opts(fake_api)) == []         # illegal_search_term
    assert cts_lookup(ThreatFoxSearcher, "hash.md5", "abc", opts=opts(fake_api)) == []              # illegal_hash
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert "illegal_hash" in logged and "bad name" not in logged and "192.0.2.50" not in logged


def test_without_a_key_it_asks_nothing_and_gives_no_hit(cts_lookup, fake_api, caplog):
    threatfox(fake_api)
    assert cts_lookup(ThreatFoxSearcher, "net.ip", "139.180.203.104", opts=opts(fake_api, key="")) == []
    assert fake_api.calls() == []
    assert any("[threatfox_searcher] has no api_key" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("rejection", ["http", "body"])
def test_a_rejected_key_fails_cleanly_and_the_service_keeps_serving(cts_service, fake_api, caplog, rejection):
    check_a_rejected_key(cts_service, fake_api, caplog, rejection, threatfox, ThreatFoxSearcher, opts,
                         refused={"type": "net.name", "value": "ntpjson.monster"},
                         answered={"type": "net.ip", "value": "139.180.203.104"})


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    threatfox(fake_api, once=[(429, b"Too Many Requests", {"Retry-After": "1"})])
    t0 = time.time()
    [hit] = cts_lookup(ThreatFoxSearcher, "hash.md5", MD5, opts=opts(fake_api))
    calls = fake_api.calls(PATH)
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Score"] == 100


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>gateway</html>", "not JSON"),
    (200, [{"query_status": "ok"}], "malformed answer"),
    (200, {"data": []}, "without a query_status"),
    (200, {"query_status": "unknown_query"}, "query_status unknown_query"),
    (200, {"query_status": "ok", "data": {"ioc": "x"}}, "malformed data list"),
    (200, {"query_status": "ok", "data": ["139.180.203.104:443"]}, "malformed IOC record"),
    (200, {"query_status": "ok", "data": [{**SEARCHES["ntpjson.monster"][0], "tags": "x"}]}, "malformed tags list"),
    (500, {"error": "internal"}, "answered HTTP 500"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    threatfox(fake_api, once=[(status, body)])
    service = cts_service(ThreatFoxSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("threatfox", {"type": "net.name", "value": "ntpjson.monster"})
    assert r.status == 303 and r.json["hits"] == []
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert "ntpjson.monster" not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("threatfox", {"type": "net.ip", "value": "139.180.203.104"}).json["hits"]) == 1


def test_its_config_section_reads_the_shared_abuse_ch_key():
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(CONFIG)
    assert config.sections() == ["threatfox_searcher"] and ThreatFoxSearcher.section == "threatfox_searcher"
    assert config["threatfox_searcher"]["api_key"] == "$ABUSE_CH_AUTH_KEY"
