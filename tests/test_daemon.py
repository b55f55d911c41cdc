"""rc-cts inside the real resilient-circuits daemon, against a local SOAR stand-in."""
import os
from importlib.metadata import entry_points
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rc_cts.config import sections as config_sections

from rc_cts.tools.client import Client
from .conftest import ROOT
from .redis_server import free_port
from .soar_standin import SoarStandIn

BIN = Path(sys.executable).parent


def daemon_env(tmp_path, config: Path, pythonpath=()):
    env = dict(os.environ, APP_CONFIG_FILE=str(config), APP_LOCK_FILE=str(tmp_path / "lock"),
               HOME=str(tmp_path))
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    return env


@pytest.fixture
def soar(certfile):
    with SoarStandIn(certfile) as standin:
        yield standin


def write_config(tmp_path, soar, extra=""):
    (tmp_path / "logs").mkdir(exist_ok=True)
    config = tmp_path / "app.config"
    config.write_text(soar.resilient_section() + f"logdir = {tmp_path / 'logs'}\n\n"
                      "[webserver]\nserver = 127.0.0.1\nport = 0\n\n"
                      "[custom_threat_service]\nsync_wait_secs = 2\n\n" + extra)
    return config


def test_lookups_through_the_resilient_circuits_daemon(tmp_path, soar, legacy_searcher_path):
    config = write_config(tmp_path, soar, "[legacy_example]\nprefix = daemon\n")
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([str(BIN / "resilient-circuits"), "run"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT,
                            env=daemon_env(tmp_path, config, [legacy_searcher_path]))
    try:
        deadline = time.time() + 60
        while not re.search(r"listening on http://127\.0\.0\.1:\d+", log.read_text()):
            assert proc.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text).group(1) + "/cts"
        assert ("POST", "/rest/session") in soar.calls            # the daemon logged in to "SOAR"
        c = Client(url)
        r = c.post("example", {"type": "net.uri", "value": "http://daemon.example"})
        assert r.status == 200 and len(r.json["hits"]) == 2       # searchers_example, via the daemon's loader
        r = c.post("legacy_example", {"type": "net.ip", "value": "10.1.2.3"})
        assert r.status == 200
        assert {p["name"]: p["value"] for p in r.json["hits"][0]["props"]}["Prefix"] == "daemon"
        r = c.post("legacy_resilient", {"type": "net.ip", "value": "10.1.2.3"})  # a ResilientComponent searcher
        assert r.status == 200 and r.json["hits"]
        assert c.get("example", c.post("example", {"type": "net.uri", "value": "http://x"}).json["id"]).status == 200
        proc.send_signal(signal.SIGTERM)
        # the daemon's own loop sees the signal only between its STOMP reconnect attempts
        assert proc.wait(30) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "a non-lookup event reached the searcher" not in text   # catch-all got lookups only
    assert "Traceback" not in text


def test_config_create_and_update_write_the_sections(tmp_path):
    env = dict(os.environ, HOME=str(tmp_path))
    env.pop("APP_CONFIG_FILE", None)
    created = tmp_path / "created.config"
    subprocess.run([str(BIN / "resilient-circuits"), "config", "-c", str(created)], env=env,
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    text = created.read_text()
    assert config_sections.WEBSERVER in text and config_sections.CUSTOM_THREAT_SERVICE in text
    assert "[searchers_example]" in text

    existing = tmp_path / "existing.config"
    existing.write_text("[resilient]\nhost = soar.example\n\n[webserver]\nport = 9443\n")
    subprocess.run([str(BIN / "resilient-circuits"), "config", "-u", str(existing)], env=env,
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    text = existing.read_text()
    assert "port = 9443" in text and text.count("[webserver]") == 1      # kept as it was
    assert config_sections.CUSTOM_THREAT_SERVICE in text                # added
    assert "[searchers_example]" in text


def test_app_config_sample_carries_the_same_sections():
    sample = (ROOT / "app.config.sample").read_text()
    assert config_sections.WEBSERVER in sample and config_sections.CUSTOM_THREAT_SERVICE in sample
    assert config_sections.RESILIENT in sample  # standalone logging, with resilient-circuits' option names


def test_resilient_circuits_list_names_the_components(tmp_path):
    # (`list -v` crashes in resilient-circuits 51 for any package whose distribution name differs
    # from its module name, as setuptools writes `rc-cts` for module `rc_cts`; plain `list` works.)
    out = subprocess.run([str(BIN / "resilient-circuits"), "list"], capture_output=True, text=True,
                         env=dict(os.environ, HOME=str(tmp_path)))
    assert out.returncode == 0, out.stderr
    listing = out.stdout + out.stderr
    assert "The following packages and components are installed" in listing
    # (It keys packages by distribution name but looks them up by module name, so every package
    # of ours is "Unknown", and only the last one read is shown: one of ours must be.)
    ours = {ep.name for ep in entry_points(group="resilient.circuits.components")
            if ep.value.split(".")[0] in ("rc_cts", "searchers_example", "searchers_intel")}
    assert any(f"\t{name}" in listing for name in ours), listing


def run_selftest(tmp_path, config):
    out = subprocess.run([str(BIN / "resilient-circuits"), "selftest"], capture_output=True, text=True,
                         env=daemon_env(tmp_path, config), timeout=180, stdin=subprocess.DEVNULL)
    return out.returncode, out.stdout + out.stderr


def test_resilient_circuits_selftest_passes_for_a_healthy_threat_service(tmp_path, soar):
    # Its STOMP check waits for a subscription to a message destination, which a threat service
    # (no functions) never makes: the service lets the check go on once STOMP has connected.
    code, log = run_selftest(tmp_path, write_config(tmp_path, soar))
    assert code == 0, log
    assert "Successfully connected via REST" in log and "Successfully connected via STOMP" in log
    assert "the threat service subscribes to no message destination" in log
    assert re.search(r"rc_cts: success", log), log
    assert "searchers serving " in log and "example" in log and "memory store answers" in log, log
    assert "Successfully ran App's selftest" in log


def test_resilient_circuits_selftest_fails_for_a_store_that_does_not_answer(tmp_path, soar):
    config = write_config(tmp_path, soar)
    config.write_text(config.read_text().replace(
        "[custom_threat_service]\n", f"[custom_threat_service]\nstore = redis\nredis_url = redis://127.0.0.1:{free_port()}/0\n"))
    code, log = run_selftest(tmp_path, config)
    assert code == 1, log
    assert "Successfully connected via STOMP" in log
    assert re.search(r"rc_cts: failure", log) and "the redis store does not answer" in log, log


def test_selftest_reports_a_bad_configuration():
    from rc_cts.selftest import selftest_function
    result = selftest_function({"custom_threat_service": {"workers": "none"}})
    assert result["state"] == "failure" and "'workers'" in result["reason"]
    ok = selftest_function({"webserver": {"port": "9443"}})
    assert ok["state"] == "success" and "example" in ok["reason"] and ":9443/cts" in ok["reason"]


def test_lookups_are_answered_while_the_daemon_retries_an_unreachable_stomp_broker(tmp_path, soar):
    config = write_config(tmp_path, soar)
    text = config.read_text().replace(f"stomp_port = {soar.stomp.port}", f"stomp_port = {free_port()}")
    config.write_text(text.replace("max_connection_retries = 1", "max_connection_retries = 100"))
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen([str(BIN / "resilient-circuits"), "run"], stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT, env=daemon_env(tmp_path, config))
    try:
        deadline = time.time() + 60
        while not re.search(r"listening on http://127\.0\.0\.1:\d+", log.read_text()):
            assert proc.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read_text()).group(1) + "/cts"
        c = Client(url, timeout=5)
        worst = 0.0
        for i in range(20):  # several seconds of the daemon's loop retrying STOMP
            t0 = time.perf_counter()
            r = c.post("example", {"type": "net.uri", "value": f"http://stomp-down/{i}"})
            worst = max(worst, time.perf_counter() - t0)
            assert r.status == 200 and len(r.json["hits"]) == 2
            time.sleep(0.2)
        assert proc.poll() is None
        assert "could not connect to host 127.0.0.1" in log.read_text()  # STOMP refused throughout
        assert worst < 1.0, worst
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
