"""The tools for searcher authors: rc-cts searchers / lookup / new-searcher, and the pytest fixtures."""
import json
import os
import subprocess
import sys

import pytest

from rc_cts.testing import SearcherFailed

from .conftest import ROOT
from .searchers import FailingSearcher, FindingSearcher, HitSearcher, IncompleteSearcher, SleepSearcher


def rc_cts(*args, pythonpath=(), env=None, check=False):
    environ = dict(os.environ, **(env or {}))
    environ["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    environ.pop("APP_CONFIG_FILE", None)
    return subprocess.run([sys.executable, "-m", "rc_cts.tools.cli", *args], capture_output=True, text=True,
                          env=environ, check=check, timeout=120)


def test_searchers_lists_services_types_and_packages(legacy_searcher_path):
    out = rc_cts("searchers", pythonpath=[legacy_searcher_path])
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "ARTIFACT", "TYPES", "SEARCHER", "PACKAGE"]
    rows = {line.split()[0]: line for line in lines[1:] if line.strip() and not line.startswith(" ")}
    assert "net.uri" in rows["example"] and "rc-cts-searchers-example 1.0.0" in rows["example"]
    assert "every type" in rows["legacy_example"]
    assert "net.ip" in rows["legacy_resilient"] and "rc-cts-legacy-resilient 1.0.0" in rows["legacy_resilient"]
    assert out.returncode == 0


def test_searchers_reports_load_errors(legacy_searcher_path):
    code = "import sys; sys.modules['pkg_resources'] = None\nfrom rc_cts.tools.cli import main\nsys.exit(main(['searchers']))"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(legacy_searcher_path), str(ROOT)]))
    broken = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert broken.returncode == 1
    assert "not loaded:" in broken.stdout and "pip install 'rc-cts[legacy]'" in broken.stdout
    assert "example" in broken.stdout  # the others are still listed


def test_lookup_in_process_prints_a_table():
    out = rc_cts("lookup", "net.uri", "http://bad.example", check=True)
    assert "/cts/example: 200, 2 hits" in out.stdout
    assert "Link        http://bad.example  (uri)" in out.stdout
    assert "Location    42.366, -71.081  (latlng)" in out.stdout


def test_lookup_in_process_as_json():
    out = rc_cts("lookup", "net.uri", "http://bad.example", "--service", "example", "--json", check=True)
    [result] = json.loads(out.stdout)
    assert result["status"] == 200 and len(result["body"]["hits"]) == 2


def test_lookup_against_a_url_follows_303s(start_service):
    svc = start_service([SleepSearcher()], sync_wait_secs=0.1, first_retry_secs=0.2, later_retry_secs=0.2)
    out = rc_cts("lookup", "--url", f"{svc.url}/slow", "net.name", "sleep:0.6", "--json", check=True)
    [result] = json.loads(out.stdout)
    assert result["status"] == 200 and result["polls"] >= 1
    assert result["body"]["hits"][0]["props"][0]["value"] == "0.6"


def test_lookup_with_auth_and_errors(start_service):
    svc = start_service([HitSearcher()], auth_user="u", auth_password="p:w")
    ok = rc_cts("lookup", "--url", f"{svc.url}/test", "--user", "u", "--password", "p:w", "net.uri", "x")
    assert ok.returncode == 0 and "1 hit" in ok.stdout
    denied = rc_cts("lookup", "--url", f"{svc.url}/test", "net.uri", "x")
    assert denied.returncode == 1 and "401 error: authentication required" in denied.stdout
    unknown = rc_cts("lookup", "--url", f"{svc.url}/nosuch", "--user", "u", "--password", "p:w", "net.uri", "x")
    assert unknown.returncode == 1 and "404 error: unknown threat service" in unknown.stdout
    refused = rc_cts("lookup", "--url", "http://127.0.0.1:1/cts/x", "net.uri", "x")
    assert refused.returncode == 1 and "cannot connect" in refused.stderr


def test_lookup_value_as_json(start_service):
    svc = start_service([IncompleteSearcher()])
    out = rc_cts("lookup", "--url", f"{svc.url}/flaky", "net.port", "0", "--value-json", "--json", check=True)
    assert json.loads(out.stdout)[0]["body"]["hits"][0]["props"][0]["value"] == 1


def test_new_searcher_installs_and_passes_its_own_test(tmp_path):
    out = rc_cts("new-searcher", "My-Intel", "--dir", str(tmp_path), "--type", "net.name", check=True)
    pkg = tmp_path / "my_intel"
    assert str(pkg) in out.stdout
    assert (pkg / "setup.py").exists() and (pkg / "my_intel" / "searcher.py").exists()
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(pkg)], check=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(pkg / "tests")],
                           capture_output=True, text=True, env=env, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
    listed = rc_cts("searchers", pythonpath=[site], check=True)
    assert any(line.split()[:2] == ["my_intel", "net.name"] for line in listed.stdout.splitlines())
    assert rc_cts("new-searcher", "My-Intel", "--dir", str(tmp_path)).returncode == 2  # exists already
    assert rc_cts("new-searcher", "123", "--dir", str(tmp_path)).returncode == 2


# -- the pytest fixtures, as searcher authors use them ---------------------------------------------
def test_cts_lookup_fixture(cts_lookup):
    hits = cts_lookup(HitSearcher, "net.uri", "http://x")
    assert hits[0]["props"][0] == {"type": "string", "name": "Seen", "value": "http://x"}
    assert cts_lookup(HitSearcher(), "net.ip", "1.1.1.1") == []
    assert len(cts_lookup(FindingSearcher, "net.uri", "http://y")) == 3


def test_cts_lookup_fixture_retries_incomplete_searchers(cts_lookup):
    hits = cts_lookup(IncompleteSearcher, "net.port", 2)
    assert hits[0]["props"][0]["value"] == 3


def test_cts_lookup_fixture_raises_when_the_searcher_fails(cts_lookup):
    with pytest.raises(SearcherFailed, match="upstream exploded"):
        cts_lookup(FailingSearcher, "net.uri", "http://x")


def test_cts_service_fixture(cts_service):
    service = cts_service(HitSearcher(), FindingSearcher(), auth_user="a", auth_password="b")
    c = service.client(user="a", password="b")
    assert c.post("test", {"type": "net.uri", "value": "z"}).status == 200
    assert c.post("mixed", {"type": "net.uri", "value": "z"}).status == 200
    assert service.client().options("test").status == 401


def test_lookup_in_process_never_uses_the_services_store(tmp_path):
    db = tmp_path / "service.sqlite3"
    cfg = tmp_path / "app.config"
    cfg.write_text(f"[custom_threat_service]\nstore = sqlite\nsqlite_path = {db}\n")
    out = rc_cts("lookup", "-c", str(cfg), "net.uri", "http://x", "--service", "example", check=True)
    assert "2 hits" in out.stdout and not db.exists()


def test_unusable_store_is_a_clean_start_error(run_cli, tmp_path):
    (tmp_path / "a_dir.sqlite3").mkdir()
    proc = run_cli(f"[custom_threat_service]\nstore = sqlite\nsqlite_path = {tmp_path / 'a_dir.sqlite3'}\n", wait=False)
    assert proc.proc.wait(30) == 1
    assert "cannot start: [custom_threat_service] option 'sqlite_path': cannot open the SQLite store" in proc.log
    assert "Traceback" not in proc.log
