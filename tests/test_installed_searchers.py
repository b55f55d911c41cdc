"""Searcher packages installed with pip and found through their entry points, run by ``rc-cts run``."""
import json
import os
import subprocess
import sys

from rc_cts.plugins import LEGACY_HINT

from rc_cts.tools.client import Client
from .conftest import ROOT
from .soar_standin import SoarStandIn

CONFIG = """
[webserver]
server = 127.0.0.1
port = 0

[custom_threat_service]
sync_wait_secs = 2

[legacy_example]
prefix = from-config
"""


def test_unmodified_original_style_package(run_cli, original_searcher_path):
    proc = run_cli(CONFIG, pythonpath=[original_searcher_path])
    assert "searcher LegacyExampleSearcher._lookup on legacy_example for every artifact type" in proc.log
    c = Client(proc.url + "/cts")
    r = c.post("legacy_example", {"type": "net.uri", "value": "http://bad.example"})
    assert r.status == 200, r
    [hit] = r.json["hits"]
    props = {p["name"]: p for p in hit["props"]}
    assert props["id"] == {"type": "number", "name": "id", "value": 123}   # sent as a string, now a number
    assert props["Prefix"]["value"] == "from-config"                       # opts reach the searcher
    assert props["Location"]["value"] == {"lat": 42.366, "lng": -71.081}
    assert c.post("legacy_example", {"type": "net.name", "value": "x"}).json["hits"] == []
    proc.stop()
    assert "a non-lookup event reached the searcher" not in proc.log
    assert "Traceback" not in proc.log


def test_resilient_component_searcher_with_a_resilient_section(run_cli, legacy_searcher_path, certfile):
    with SoarStandIn(certfile) as soar:
        proc = run_cli(CONFIG + soar.resilient_section() + "[legacy_resilient]\nnote = hello\n",
                       pythonpath=[legacy_searcher_path])
        assert ("POST", "/rest/session") in soar.calls   # it logged in to "SOAR" when created
        c = Client(proc.url + "/cts")
        r = c.post("legacy_resilient", {"type": "net.ip", "value": "10.0.0.1"})
        assert r.status == 200, r
        props = {p["name"]: p["value"] for p in r.json["hits"][0]["props"]}
        assert props == {"Org": "Test Org", "Note": "hello", "IP": "10.0.0.1"}
        # the original-style searcher from the same install is served beside it
        assert c.post("legacy_example", {"type": "net.ip", "value": "1.1.1.1"}).json["hits"]


def test_resilient_component_searcher_runs_standalone_without_a_resilient_section(run_cli, legacy_searcher_path):
    """No [resilient] section, no SOAR server: rc-cts run creates ResilientComponent searchers in
    the mode that reads no platform (multitenancy), so they load and answer."""
    proc = run_cli(CONFIG + "[legacy_resilient]\nnote = standalone\n", pythonpath=[legacy_searcher_path])
    assert "searcher LegacyResilientSearcher._lookup_net_ip on legacy_resilient for net.ip" in proc.log
    c = Client(proc.url + "/cts")
    r = c.post("legacy_resilient", {"type": "net.ip", "value": "10.0.0.1"})
    assert r.status == 200, r
    props = {p["name"]: p["value"] for p in r.json["hits"][0]["props"]}
    assert props["Note"] == "standalone" and props["IP"] == "10.0.0.1"
    assert c.post("legacy_example", {"type": "net.ip", "value": "1.1.1.1"}).status == 200
    proc.stop()
    assert "not loaded" not in proc.log and "KeyError" not in proc.log and "Traceback" not in proc.log


def test_resilient_component_searcher_in_the_cts_lookup_fixture(cts_lookup, legacy_searcher_path, monkeypatch):
    monkeypatch.syspath_prepend(str(legacy_searcher_path))
    from rc_cts_legacy_resilient.searcher import LegacyResilientSearcher
    hits = cts_lookup(LegacyResilientSearcher, "net.ip", "10.0.0.2", opts={"legacy_resilient": {"note": "n"}})
    assert {p["name"]: p["value"] for p in hits[0]["props"]}["Note"] == "n"


def test_example_searcher_runs_on_embedded_defaults_with_app_config_file(run_cli, tmp_path):
    cfg = tmp_path / "env.config"
    cfg.write_text("[webserver]\nserver = 127.0.0.1\nport = 0\n")
    proc = run_cli(None, env={"APP_CONFIG_FILE": str(cfg)})
    assert f"config file: {cfg}" in proc.log
    c = Client(proc.url + "/cts")
    assert c.options("example").json == {"upload_file": False}


def test_missing_pkg_resources_names_the_fix(legacy_searcher_path):
    code = ("import sys, json; sys.modules['pkg_resources'] = None\n"
            "from rc_cts import plugins\n"
            "found, errors = plugins.discover()\n"
            "print(json.dumps([str(e) for e in errors if e.entry_point == 'LegacyExampleSearcher']))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(legacy_searcher_path), str(ROOT)]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    [error] = json.loads(out.stdout)
    assert "LegacyExampleSearcher" in error and "pip install 'rc-cts[legacy]'" in error
    assert LEGACY_HINT in error


def test_broken_plugin_does_not_stop_the_others(run_cli, original_searcher_path, tmp_path):
    broken = tmp_path / "broken_site"
    (broken / "broken_searcher").mkdir(parents=True)
    (broken / "broken_searcher" / "__init__.py").write_text("raise ImportError('no module named missing_dep')\n")
    dist = broken / "broken_searcher-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-searcher\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[resilient.circuits.components]\nBroken = broken_searcher:Searcher\n")
    proc = run_cli(CONFIG, pythonpath=[broken, original_searcher_path], wait=False)
    assert proc.proc.wait(60) == 1   # `rc-cts run` refuses to start with a package that does not load
    assert ("cannot start: searcher Broken (broken-searcher) not loaded: ImportError: no module named "
            "missing_dep") in proc.log
    listed = subprocess.run([sys.executable, "-m", "rc_cts.tools.cli", "searchers"], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join([str(broken), str(original_searcher_path),
                                                                             str(ROOT)])))
    assert "legacy_example" in listed.stdout and "Broken (broken-searcher)" in listed.stdout


def test_bad_config_value_is_named(run_cli):
    proc = run_cli("[custom_threat_service]\nworkers = many\n", wait=False)
    assert proc.proc.wait(30) == 2
    assert "option 'workers': 'many' is not a valid int" in proc.log


def test_port_in_use_is_a_clear_error(run_cli):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    proc = run_cli(f"[webserver]\nserver = 127.0.0.1\nport = {port}\n", wait=False)
    assert proc.proc.wait(30) == 1
    assert f"cannot start: cannot listen on 127.0.0.1:{port}: Address already in use" in proc.log
    s.close()


def test_sigterm_stops_the_service_promptly_even_with_catch_all_searchers(run_cli, original_searcher_path):
    import signal
    import time
    proc = run_cli(CONFIG, pythonpath=[original_searcher_path])
    assert "for every artifact type" in proc.log   # a catch-all searcher is loaded
    t0 = time.time()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(5) == 0
    assert time.time() - t0 < 3
    assert "stopping on signal" in proc.log
