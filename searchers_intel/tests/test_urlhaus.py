"""abuse.ch URLhaus against a local stand-in built from its documentation (never the internet):
POST /v1/url/ (form url=) and POST /v1/host/ (form host=), each needing the Auth-Key header;
401 without one, 403 {"query_status": "unknown_auth_key"} for a key abuse.ch does not know."""
import configparser
import time

import pytest

from rc_cts.testing import hit_values
from searchers_intel.urlhaus import CONFIG, URLhausSearcher

from abusech_api import KEY, abusech_route, check_a_rejected_key
URL = "http://sskymedia.com/VMYB-ht_JAQo-gi/INV/Outstanding-Invoices/"
URL_RECORD = {
    "query_status": "ok", "id": "105821", "urlhaus_reference": "https://urlhaus.abuse.ch/url/105821/",
    "url": URL, "url_status": "offline", "host": "sskymedia.com",
    "date_added": "2019-01-19 01:33:26 UTC", "last_online": "2019-01-21 10:19:17 UTC",
    "threat": "malware_download",
    "blacklists": {"spamhaus_dbl": "abused_legit_malware", "surbl": "not listed"},
    "reporter": "Cryptolaemus1", "larted": "true", "takedown_time_seconds": "91738",
    "tags": ["emotet", "epoch2", "heodo"],
    "payloads": [{"firstseen": "2019-01-19", "filename": "5616769081079106.doc", "file_type": "doc",
                  "response_size": "179664", "response_md5": "fedfa8ad9ee7846b88c5da79b32f6551",
                  "response_sha256": "dc9f3b226bccb2f1fd4810cde541e5a10d59a1fe683f4a9462293b6ade8d8403",
                  "urlhaus_download": "https://urlhaus-api.abuse.ch/v1/download/dc9f3b22/",
                  "signature": "Heodo", "virustotal": None}],
}
HOST_RECORD = {
    "query_status": "ok", "urlhaus_reference": "https://urlhaus.abuse.ch/host/vektorex.com/",
    "host": "vektorex.com", "firstseen": "2019-01-15 07:09:01 UTC", "url_count": "2",
    "blacklists": {"spamhaus_dbl": "not listed", "surbl": "listed"},
    "urls": [
        {"id": "121319", "urlhaus_reference": "https://urlhaus.abuse.ch/url/121319/",
         "url": "http://vektorex.com/source/Z/5016223.exe", "url_status": "online",
         "date_added": "2019-02-11 07:45:05 UTC", "threat": "malware_download", "reporter": "abuse_ch",
         "larted": "false", "takedown_time_seconds": None, "tags": ["AZORult", "exe"]},
        {"id": "121316", "urlhaus_reference": "https://urlhaus.abuse.ch/url/121316/",
         "url": "http://vektorex.com/source/Z/Order%20839.png", "url_status": "offline",
         "date_added": "2019-02-11 06:47:03 UTC", "threat": "malware_download", "reporter": "abuse_ch",
         "larted": "true", "takedown_time_seconds": "3600", "tags": None},
    ],
}
IP_RECORD = {**HOST_RECORD, "host": "198.51.100.7", "url_count": "1",
             "urlhaus_reference": "https://urlhaus.abuse.ch/host/198.51.100.7/",
             "urls": [{**HOST_RECORD["urls"][0], "url": "http://198.51.100.7/bins/mips"}]}


def opts(api, key=KEY):
    return {"urlhaus_searcher": {"url": api.url, "api_key": key, "timeout_secs": "2"}}


def urlhaus(api, accepted=lambda: KEY, once=None):
    """The two documented endpoints, answering by the form field as URLhaus does (``once``, shared
    by both: see abusech_route)."""
    once = once if once is not None else []

    def url_answer(call):
        url = call.form().get("url", "")
        if url == URL:
            return 200, URL_RECORD
        if not url.startswith(("http://", "https://")):
            return 200, {"query_status": "invalid_url"}
        return 200, {"query_status": "no_results"}

    def host_answer(call):
        host = call.form().get("host", "")
        records = {"vektorex.com": HOST_RECORD, "198.51.100.7": IP_RECORD}
        if host in records:
            return 200, records[host]
        if not host or "/" in host:
            return 200, {"query_status": "invalid_host"}
        return 200, {"query_status": "no_results"}

    api.route("/v1/url/", abusech_route(url_answer, accepted, once))
    api.route("/v1/host/", abusech_route(host_answer, accepted, once))
    return api


def test_a_malware_url_is_a_hit_asked_as_documented(cts_lookup, fake_api):
    urlhaus(fake_api)
    [hit] = cts_lookup(URLhausSearcher, "net.uri", URL, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Source"] == "URLhaus" and values["Verdict"] == "malware_download"
    assert values["First seen"] == "2019-01-19 01:33:26 UTC" and values["Last seen"] == "2019-01-21 10:19:17 UTC"
    assert values["Tags"] == "emotet, epoch2, heodo" and values["Status"] == "offline"
    assert values["Malware"] == "Heodo" and values["Blacklists"] == "spamhaus_dbl: abused_legit_malware"
    assert values["Report"] == "https://urlhaus.abuse.ch/url/105821/"
    [call] = fake_api.calls("/v1/url/")
    assert call.method == "POST" and call.form() == {"url": URL} and call.headers["auth-key"] == KEY
    assert call.headers["content-type"].startswith("application/x-www-form-urlencoded")


@pytest.mark.parametrize("artifact_type, host, record", [
    ("net.name", "vektorex.com", HOST_RECORD),
    ("net.ip", "198.51.100.7", IP_RECORD),
])
def test_a_host_serving_malware_is_a_hit_asked_as_documented(cts_lookup, fake_api, artifact_type, host, record):
    urlhaus(fake_api)
    [hit] = cts_lookup(URLhausSearcher, artifact_type, host, opts=opts(fake_api))
    values = hit_values(hit)
    assert values["Verdict"] == "malware_download" and values["First seen"] == "2019-01-15 07:09:01 UTC"
    assert values["Last seen"] == "2019-02-11 07:45:05 UTC" and values["Tags"] == "AZORult, exe"
    assert values["Malware urls"] == len(record["urls"]) and values["Online urls"] == 1
    assert values["Blacklists"] == "surbl: listed" and values["Report"] == record["urlhaus_reference"]
    [call] = fake_api.calls("/v1/host/")
    assert call.method == "POST" and call.form() == {"host": host} and call.headers["auth-key"] == KEY


def test_unknown_and_invalid_values_give_no_hit(cts_lookup, fake_api, caplog):
    caplog.set_level("INFO")
    urlhaus(fake_api)
    assert cts_lookup(URLhausSearcher, "net.uri", "http://unknown.example/x", opts=opts(fake_api)) == []
    assert cts_lookup(URLhausSearcher, "net.name", "unknown.example", opts=opts(fake_api)) == []
    assert cts_lookup(URLhausSearcher, "net.uri", "not a url", opts=opts(fake_api)) == []        # invalid_url
    assert cts_lookup(URLhausSearcher, "net.name", "bad/host", opts=opts(fake_api)) == []        # invalid_host
    logged = " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert "invalid_url" in logged and "not a url" not in logged and "bad/host" not in logged


def test_a_known_host_with_no_malware_url_gives_no_hit(cts_lookup, fake_api):
    fake_api.answer("/v1/host/", 200, {**HOST_RECORD, "url_count": "0", "urls": []})
    assert cts_lookup(URLhausSearcher, "net.name", "vektorex.com", opts=opts(fake_api)) == []


def test_without_a_key_it_asks_nothing_and_gives_no_hit(cts_lookup, fake_api, caplog):
    urlhaus(fake_api)
    assert cts_lookup(URLhausSearcher, "net.uri", URL, opts=opts(fake_api, key="")) == []
    assert fake_api.calls() == []
    assert any("[urlhaus_searcher] has no api_key" in rec.getMessage() for rec in caplog.records)


@pytest.mark.parametrize("rejection", ["http", "body"])
def test_a_rejected_key_fails_cleanly_and_the_service_keeps_serving(cts_service, fake_api, caplog, rejection):
    check_a_rejected_key(cts_service, fake_api, caplog, rejection, urlhaus, URLhausSearcher, opts,
                         refused={"type": "net.uri", "value": URL}, answered={"type": "net.name", "value": "vektorex.com"})


def test_a_429_defers_the_lookup_which_completes_after(cts_lookup, fake_api):
    urlhaus(fake_api, once=[(429, b"Too Many Requests", {"Retry-After": "1"})])
    t0 = time.time()
    [hit] = cts_lookup(URLhausSearcher, "net.uri", URL, opts=opts(fake_api))
    calls = fake_api.calls("/v1/url/")
    assert len(calls) == 2 and calls[1].at - calls[0].at >= 0.95 and time.time() - t0 < 5
    assert hit_values(hit)["Verdict"] == "malware_download"


@pytest.mark.parametrize("status, body, message", [
    (200, b"<html>gateway</html>", "not JSON"),
    (200, ["not", "an", "answer"], "malformed answer"),
    (200, {"url": URL}, "without a query_status"),
    (200, {"query_status": ["ok"]}, "without a query_status"),
    (404, {"error": "not found"}, "answered HTTP 404"),
    (200, {"query_status": "http_post_expected"}, "query_status http_post_expected"),
    (200, {**URL_RECORD, "tags": "emotet"}, "malformed tags list"),
    (200, {**URL_RECORD, "payloads": {"x": 1}}, "malformed payloads list"),
    (502, {"error": "bad gateway"}, "answered HTTP 502"),
])
def test_a_malformed_answer_fails_the_call_and_the_service_keeps_serving(cts_service, fake_api, status, body,
                                                                           message, caplog):
    caplog.set_level("INFO")
    urlhaus(fake_api)
    fake_api.answer("/v1/url/", status, body)
    service = cts_service(URLhausSearcher(opts(fake_api)), opts=opts(fake_api), max_retries="1")
    c = service.client()
    r = c.post("urlhaus", {"type": "net.uri", "value": URL})
    assert r.status == 303 and r.json["hits"] == []
    assert any(message in rec.getMessage() for rec in caplog.records if rec.levelname == "ERROR")
    assert URL not in " ".join(rec.getMessage() for rec in caplog.records if rec.levelno > 10)
    assert len(c.post("urlhaus", {"type": "net.name", "value": "vektorex.com"}).json["hits"]) == 1


def test_its_config_section_reads_the_shared_abuse_ch_key():
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(CONFIG)
    assert config.sections() == ["urlhaus_searcher"] and URLhausSearcher.section == "urlhaus_searcher"
    assert config["urlhaus_searcher"]["api_key"] == "$ABUSE_CH_AUTH_KEY"
