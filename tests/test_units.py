"""Unit tests for the pieces: hits, protocol, config, auth, store, bodies, searcher calls."""
import json
import time

import pytest

import rc_cts
from rc_cts import (Hit, IpProp, LatLngProp, NumberProp, StringProp, ThreatLookupIncompleteException,
                    ThreatServiceLookupEvent, UriProp, searcher_channel)
from rc_cts.http.auth import BasicAuth
from rc_cts.http.body import JsonBody, MultipartBody, body_for
from rc_cts.config import ConfigError, Settings, find_config_file, read_config_file, settings_from_opts
from rc_cts.http.errors import HttpError
from rc_cts.http.protocol import request_id, validate_artifact, retry_body
from rc_cts.lookups.calls import DONE, FAILED, INCOMPLETE, call_searcher
from rc_cts.store import LookupRecord, MemoryStore

from rc_cts.tools.client import multipart


# -- public API and compatibility -----------------------------------------------------------------
def test_original_module_paths_name_the_same_classes():
    from rc_cts.components import threat_webservice
    from rc_cts.lib import threat_models
    assert threat_webservice.ThreatServiceLookupEvent is ThreatServiceLookupEvent
    assert threat_webservice.ThreatLookupIncompleteException is ThreatLookupIncompleteException
    assert threat_models.Hit is Hit and threat_models.searcher_channel is searcher_channel
    assert "net.uri" in threat_models.ARTIFACT_TYPES
    assert set(rc_cts.__all__) >= {"searcher_channel", "Hit", "StringProp", "NumberProp", "UriProp",
                                   "IpProp", "LatLngProp", "ThreatServiceLookupEvent",
                                   "ThreatLookupIncompleteException"}


def test_searcher_channel():
    assert searcher_channel("example") == "cts_search.example"
    assert searcher_channel("a", "b") == "cts_search.a.b"


# -- hits -------------------------------------------------------------------------------------
def test_hit_json_shape():
    hit = Hit(StringProp(name="s", value="v"), UriProp(name="u", value="http://x"),
              IpProp(name="ip", value="1.2.3.4"), NumberProp(name="n", value=3),
              LatLngProp(name="loc", lat=1.5, lng=-2))
    assert json.loads(json.dumps(hit)) == {"props": [
        {"type": "string", "name": "s", "value": "v"},
        {"type": "uri", "name": "u", "value": "http://x"},
        {"type": "ip", "name": "ip", "value": "1.2.3.4"},
        {"type": "number", "name": "n", "value": 3},
        {"type": "latlng", "name": "loc", "value": {"lat": 1.5, "lng": -2}}]}


@pytest.mark.parametrize("value,expected", [(3, 3), (2.5, 2.5), ("123", 123), ("1.5", 1.5),
                                            (True, 1), (" 7 ", 7)])
def test_number_prop_values_are_json_numbers(value, expected):
    prop = NumberProp(name="n", value=value)
    assert prop == {"type": "number", "name": "n", "value": expected}
    assert type(prop["value"]) is type(expected)


def test_number_prop_that_is_no_number_is_kept_as_string():
    assert NumberProp(name="n", value="n/a") == {"type": "string", "name": "n", "value": "n/a"}


def test_props_with_none_value_are_left_out():
    hit = Hit(StringProp(name="a", value=None), NumberProp(name="b", value=None), StringProp(name="c", value=""))
    assert [p["name"] for p in hit["props"]] == ["c"]


def test_prop_names_stay_unique():
    hit = Hit(StringProp(name="x", value="1"), StringProp(name="x", value="2"))
    hit.append(StringProp(name="x", value="3"))
    assert [p["name"] for p in hit["props"]] == ["x", "x (2)", "x (3)"]
    assert [p["value"] for p in hit["props"]] == ["1", "2", "3"]


# -- protocol ---------------------------------------------------------------------------------
def test_request_id_is_deterministic_and_covers_service_artifact_and_file():
    a = {"type": "net.ip", "value": "1.2.3.4"}
    rid = request_id("svc", a)
    assert rid == request_id("svc", dict(a)) == request_id("svc", {"value": "1.2.3.4", "type": "net.ip"})
    others = {request_id("other", a), request_id("svc", {"type": "net.ip", "value": "1.2.3.5"}),
              request_id("svc", {"type": "net.name", "value": "1.2.3.4"}), request_id("svc", a, "ab" * 32)}
    assert rid not in others and len(others) == 4


@pytest.mark.parametrize("artifact", [None, [], "x", {"type": 1, "value": "x"}, {"type": "a b", "value": "x"},
                                      {"type": "a/b", "value": "x"}, {"type": "x" * 200, "value": 1},
                                      {"type": "net.ip"}])
def test_invalid_artifacts(artifact):
    with pytest.raises(HttpError) as exc:
        validate_artifact(artifact)
    assert exc.value.status == 400


def test_artifact_values_may_be_numbers_and_objects():
    assert validate_artifact({"type": "net.port", "value": 443})["value"] == 443
    assert validate_artifact({"type": "email.header", "value": {"name": "a", "value": "b"}})


def test_retry_secs_are_integers_when_whole():
    assert retry_body("i", 5.0, [])["retry_secs"] == 5 and type(retry_body("i", 5.0, [])["retry_secs"]) is int
    assert retry_body("i", 0.5, [])["retry_secs"] == 0.5


# -- config -----------------------------------------------------------------------------------
def test_defaults_match_the_original():
    s = settings_from_opts({})
    assert (s.server, s.port, s.urlbase, s.first_retry_secs, s.later_retry_secs) == ("localhost", 9000, "/cts", 5, 60)
    assert (s.cache_size, s.cache_ttl, s.sync_wait_secs, s.workers) == (10000, 600, 1.0, 32)
    assert s.cache_max_bytes == 256 * 1024 * 1024
    assert s == Settings()


def test_upstream_app_config_keeps_working(tmp_path):
    cfg = tmp_path / "app.config"
    cfg.write_text("[resilient]\nhost = soar.example\n\n[webserver]\nserver = 0.0.0.0\nport = 9443\n"
                   "secure = 0\n\n[custom_threat_service]\nurlbase = /cts\nfirst_retry_secs = 5\n"
                   "later_retry_secs = 60\nmax_retries = 60\ncache_size = 100\ncache_ttl = 30\n"
                   "upload_file = False\n")
    s = settings_from_opts(read_config_file(str(cfg)))
    assert (s.server, s.port, s.cache_size, s.cache_ttl, s.upload_file) == ("0.0.0.0", 9443, 100, 30, False)


@pytest.mark.parametrize("section,opts,message", [
    ("custom_threat_service", {"workers": "0"}, "'workers' must be greater than 0"),
    ("custom_threat_service", {"sync_wait_secs": "soon"}, "'sync_wait_secs'"),
    ("custom_threat_service", {"upload_file": "maybe"}, "'upload_file'"),
    ("custom_threat_service", {"urlbase": "cts"}, "'urlbase' must start with '/'"),
    ("custom_threat_service", {"auth_user": "u"}, "'auth_user' needs 'auth_password'"),
    ("webserver", {"port": "70000"}, "'port'"),
    ("custom_threat_service", {"store": "postgres"}, "'store' must be one of memory, sqlite, redis"),
    ("custom_threat_service", {"lease_secs": "0"}, "'lease_secs' must be greater than 0"),
    ("custom_threat_service", {"cache_max_mb": "0"}, "'cache_max_mb' must be greater than 0"),
    ("webserver", {"secure": "true"}, "'secure' needs 'certfile'"),
])
def test_bad_config_values_name_the_option(section, opts, message):
    with pytest.raises(ConfigError) as exc:
        settings_from_opts({section: opts})
    assert message in str(exc.value)


def test_config_file_lookup_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("APP_CONFIG_FILE", raising=False)
    assert find_config_file(None) is None
    (tmp_path / ".resilient").mkdir()
    (tmp_path / ".resilient" / "app.config").write_text("")
    assert find_config_file(None).endswith(".resilient/app.config")
    monkeypatch.setenv("APP_CONFIG_FILE", "/env/app.config")
    assert find_config_file(None) == "/env/app.config"
    assert find_config_file("given.config") == "given.config"


def test_environment_references_in_any_section(tmp_path, monkeypatch):
    monkeypatch.setenv("RC_CTS_TEST_KEY", "k3y")
    cfg = tmp_path / "app.config"
    cfg.write_text("[resilient]\nhost = soar\n[my_searcher]\napi_key = $RC_CTS_TEST_KEY\n"
                   "other = ${RC_CTS_TEST_KEY}\nliteral = a$b\n")
    opts = read_config_file(str(cfg))
    assert opts["my_searcher"] == {"api_key": "k3y", "other": "k3y", "literal": "a$b"}
    assert opts["host"] == "soar"  # [resilient] options also at the top level, as in resilient-circuits


def test_unreadable_config_file():
    with pytest.raises(ConfigError, match="cannot read config file"):
        read_config_file("/no/such/app.config")


# -- auth -------------------------------------------------------------------------------------
def _basic(user_pass: bytes) -> str:
    import base64
    return "Basic " + base64.b64encode(user_pass).decode()


def test_basic_auth_accepts_colons_in_passwords():
    auth = BasicAuth("u", "a:b:c")
    auth.check(_basic(b"u:a:b:c"))
    for bad in (None, "", _basic(b"u:a:b"), _basic(b"u"), _basic(b"x:a:b:c"), "Basic", "Digest abc"):
        with pytest.raises(HttpError) as exc:
            auth.check(bad)
        assert exc.value.status == 401 and "WWW-Authenticate" in exc.value.headers


# -- store ------------------------------------------------------------------------------------
def test_memory_store_expires_and_stays_bounded():
    store = MemoryStore(maxsize=2, ttl=0.2)
    for i in range(3):
        store.put(LookupRecord(str(i), "s", {"type": "t", "value": i}))
    assert store.get("0") is None and store.get("2").artifact["value"] == 2 and len(store) == 2
    time.sleep(0.25)
    assert store.get("2") is None


# -- bodies -----------------------------------------------------------------------------------
def test_a_boundary_python_multipart_refuses_is_a_400_not_an_exception():
    with pytest.raises(HttpError) as exc:
        MultipartBody(b"b" * 300)  # body_for refuses it first; a direct caller gets a 400 too
    assert exc.value.status == 400 and "boundary" in exc.value.message


def test_multipart_body_fed_one_byte_at_a_time():
    body, headers = multipart({"type": "file.content", "value": "a.bin"}, file_bytes=b"\x00\r\n--x" * 50)
    parser = body_for(headers["Content-Type"])
    for i in range(len(body)):
        parser.feed(body[i:i + 1])
    artifact, file = parser.finish()
    assert artifact == {"type": "file.content", "value": "a.bin"}
    assert file.read() == b"\x00\r\n--x" * 50 and file.size == 300 and len(file.sha256) == 64
    file.close()


def test_multipart_with_two_file_parts_is_refused():
    b = "B"
    part = f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n"
    art = f"--{b}\r\nContent-Disposition: form-data; name=\"artifact\"\r\n\r\n{{\"type\":\"t\",\"value\":1}}\r\n"
    parser = body_for(f"multipart/form-data; boundary={b}")
    with pytest.raises(HttpError) as exc:
        parser.feed((art + part + part + f"--{b}--\r\n").encode())
    assert exc.value.status == 400 and "more than one 'file' part" in exc.value.message
    parser.discard()


def test_content_types():
    assert isinstance(body_for("application/json; charset=utf-8"), JsonBody)
    assert isinstance(body_for(""), JsonBody)  # no Content-Type, as python-requests sends a str body
    for bad in ("text/plain", "application/x-www-form-urlencoded"):
        with pytest.raises(HttpError) as exc:
            body_for(bad)
        assert exc.value.status == 415


# -- searcher calls ---------------------------------------------------------------------------
def _event():
    return ThreatServiceLookupEvent("rid", "net.uri", {"type": "net.uri", "value": "v"}, searcher_channel("x"))


def test_searcher_results_of_every_shape():
    hit = Hit(StringProp(name="a", value="1"))

    def gen(event):
        yield hit
        yield [hit, None, [hit]]
        yield None

    for fn, count in ((lambda e: hit, 1), (lambda e: [hit, hit], 2), (lambda e: None, 0), (gen, 3),
                      (lambda e: (h for h in [hit]), 1)):
        outcome = call_searcher(fn, "t", _event(), True)
        assert outcome.status == DONE and len(outcome.hits) == count


def test_searcher_outcomes():
    def incomplete(event):
        raise ThreatLookupIncompleteException()

    def fails(event):
        raise KeyError("x")

    assert call_searcher(incomplete, "t", _event(), True).status == INCOMPLETE
    assert call_searcher(fails, "t", _event(), True).status == FAILED
    assert call_searcher(lambda: None, "t", _event(), False).status == DONE


def test_invalid_hits_are_dropped_and_logged(caplog):
    outcome = call_searcher(lambda e: ["text", {"props": "no"}, {"props": [{"type": "string"}]},
                                       Hit(StringProp(name="ok", value=object())),
                                       Hit(StringProp(name="ok", value="fine"))], "t", _event(), True)
    assert outcome.status == DONE and outcome.hits == [{"props": [{"type": "string", "name": "ok", "value": "fine"}]}]
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 4


def test_cancelled_timers_let_go_of_what_they_hold_and_leave_the_heap():
    import gc
    import weakref

    from rc_cts.scheduler import Scheduler

    class Held:
        pass

    scheduler = Scheduler()
    held = [Held() for _ in range(1000)]
    refs = [weakref.ref(h) for h in held]
    handles = [scheduler.call_later(300, lambda h: None, h) for h in held]
    keep = scheduler.call_later(300, lambda: None)
    del held
    for handle in handles:
        handle.cancel()
    gc.collect()
    assert all(ref() is None for ref in refs)  # not kept for the 300 s of the timers
    assert len(scheduler._heap) < 600 and not keep.cancelled
