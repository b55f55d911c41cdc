"""HTTP Basic authentication and HTTPS, through a real server."""
import base64

import pytest

from rc_cts.tools.client import Client
from .searchers import HitSearcher

GOOD = {"type": "net.uri", "value": "http://ok"}
PASSWORD = "s3:cr:et"  # colons are allowed in passwords


@pytest.fixture
def svc(start_service):
    return start_service([HitSearcher()], auth_user="platform", auth_password=PASSWORD)


def test_missing_credentials(svc, caplog):
    r = svc.client().post("test", GOOD)
    assert r.status == 401 and r.json == {"error": "authentication required"}
    assert r.headers["www-authenticate"].startswith("Basic realm=")


@pytest.mark.parametrize("user,password", [("platform", "Wr0ng-Pa55"), ("other", PASSWORD),
                                           ("platform", PASSWORD + "x"), ("platform", "s3:cr")])
def test_wrong_credentials(svc, caplog, user, password):
    r = svc.client(user=user, password=password).post("test", GOOD)
    assert r.status == 401 and "www-authenticate" in r.headers
    assert all(password not in rec.getMessage() for rec in caplog.records)  # no secrets in logs


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!notbase64!!", "Basic " + base64.b64encode(b"nocolon").decode()])
def test_malformed_credentials(svc, header):
    r = svc.client().request("POST", "/test", b"{}", {"Authorization": header, "Content-Type": "application/json"})
    assert r.status == 401 and r.json["error"]


def test_right_credentials_on_every_endpoint(svc):
    c = svc.client(user="platform", password=PASSWORD)
    r = c.post("test", GOOD)
    assert r.status == 200 and r.json["hits"]
    assert c.get("test", r.json["id"]).status == 200
    assert c.options("test").status == 200
    assert svc.client().options("test").status == 401
    assert svc.client().get("test", r.json["id"]).status == 401


def test_password_from_the_environment(run_cli):
    proc = run_cli("[webserver]\nserver = 127.0.0.1\nport = 0\n[custom_threat_service]\n"
                   "auth_user = u\nauth_password = ${CTS_TEST_PASSWORD}\n",
                   env={"CTS_TEST_PASSWORD": "from-env"})
    c = Client(proc.url + "/cts", user="u", password="from-env")
    assert c.post("example", {"type": "net.uri", "value": "http://x"}).status == 200
    bad = Client(proc.url + "/cts", user="u", password="${CTS_TEST_PASSWORD}")
    assert bad.post("example", {"type": "net.uri", "value": "http://x"}).status == 401
    assert "from-env" not in proc.log


def test_https_with_a_body_larger_than_the_socket_buffer(start_service, certfile):
    svc = start_service([HitSearcher()], secure="true", certfile=certfile, max_body_mb=4)
    assert svc.url.startswith("https://")
    c = Client(svc.url)
    r = c.post("test", GOOD, file_bytes=b"z" * (1024 * 1024))
    assert r.status == 200 and r.json["hits"]
    assert c.options("test").json == {"upload_file": False}


def test_https_rejects_plain_http_and_keeps_serving(start_service, certfile):
    svc = start_service([HitSearcher()], secure="true", certfile=certfile)
    plain = Client(svc.url.replace("https://", "http://"), timeout=5)
    with pytest.raises(Exception):
        plain.post("test", GOOD)
    assert Client(svc.url).post("test", GOOD).status == 200


def test_stalled_tls_handshake_does_not_block_others(start_service, certfile):
    import socket
    import time
    svc = start_service([HitSearcher()], secure="true", certfile=certfile)
    stalled = socket.create_connection((svc.service.http.host, svc.service.http.port))
    stalled.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
    t0 = time.time()
    assert Client(svc.url, timeout=5).post("test", GOOD).status == 200
    assert time.time() - t0 < 2
    stalled.close()
