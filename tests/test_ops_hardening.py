"""Found in review of the operations work: each of these failed before its fix."""
from __future__ import annotations

import io
import logging
import socket

import requests

from rc_cts import logs
from .searchers import HitSearcher
from .test_production import cli, write


def test_a_lookup_id_cannot_forge_a_log_line(start_service, caplog):
    svc = start_service([HitSearcher()])
    caplog.set_level(logging.INFO, logger="rc_cts.access")
    r = requests.get(f"{svc.url}/test/abc%0a2026-01-01%2000:00:00,000%20ERROR%20forged", timeout=5)
    assert r.status_code in (200, 400, 404)
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "rc_cts.access"]
    assert lines and all("\n" not in line for line in lines), lines


def test_passwords_are_masked_in_tracebacks_and_a_bad_log_call_does_not_raise():
    for log_format in ("plain", "json"):
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logs.MaskSecrets(logs._formatter(log_format)))
        log = logging.getLogger(f"rc_cts.test_mask_{log_format}")
        log.addHandler(handler)
        log.propagate = False
        try:
            raise RuntimeError("cannot reach redis://:hunter2@redis:6379/0 or redis://u:p@ss@host/0")
        except RuntimeError:
            log.exception("failed")
        log.error("bad %s %s", "one")  # the handler reports it; the caller goes on
        log.removeHandler(handler)
        text = out.getvalue()
        assert "hunter2" not in text and "ss@host" not in text and "failed" in text, text


def test_a_malformed_redis_url_is_one_line_and_auth_password_alone_is_an_error(tmp_path):
    cfg = write(tmp_path, "[custom_threat_service]\nstore = redis\nredis_url = redis://:pw@host:abc/0\n")
    out = cli("check", "-c", cfg)
    assert out.returncode != 0 and "redis_url is not usable" in out.stdout + out.stderr
    assert "Traceback" not in out.stdout + out.stderr and ":pw@" not in out.stdout + out.stderr
    cfg = write(tmp_path, "[custom_threat_service]\nauth_password = s3cret\n", name="auth.config")
    out = cli("check", "-c", cfg)
    assert out.returncode == 2 and "auth_password" in out.stdout + out.stderr and "auth_user" in out.stdout + out.stderr


def test_a_flood_of_readiness_probes_sends_one_ping_at_a_time(start_service, tmp_path):
    import time
    svc = start_service([HitSearcher()], store="sqlite", sqlite_path=tmp_path / "s.sqlite3")
    store = svc.service.store
    pings = []
    ping = store.ping

    def slow_ping():  # a store 20 ms away: probes arriving meanwhile share this ping
        pings.append(1)
        time.sleep(0.02)
        return ping()

    store.ping = slow_ping
    addr = (svc.service.http.host, svc.service.http.port)
    socks = [socket.create_connection(addr, timeout=10) for _ in range(100)]
    for s in socks:
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
        s.close()
    assert len(pings) <= 20, len(pings)  # not one queued per probe, ahead of the lookups


def test_metrics_with_an_accept_header_it_cannot_read(start_service):
    svc = start_service([HitSearcher()])
    base = svc.url.rsplit("/cts", 1)[0]
    r = requests.get(f"{base}/metrics", headers={"Accept": "application/openmetrics-text; version=abc"}, timeout=5)
    assert r.status_code == 200 and "rc_cts_" in r.text
