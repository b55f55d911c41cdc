"""IBM's original rc-cts ships its own tests in its sdist. They must pass, unmodified, against
this project: fetched from the package index at test time (never copied into the repository),
run through pytest-resilient-circuits' ``circuits_app`` fixture with its ``BasicResilientMock``,
with rc-cts and searchers_example installed and this project's ``rc_cts`` the one imported."""
import hashlib
import os
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL = "rc-cts==45.1.3279"
SDIST_TEST = "rc-cts-45.1.3279/tests/test_webserver.py"
SDIST_TEST_SHA256 = "b9b556f319a60ac9125d67c7e55378d431a17b3822d43a3703f92f7d03269a75"

APP_CONFIG = """\
[resilient]
host = localhost
org = Test Org
email = integrations@example.com
password = not-a-secret
resilient_mock = pytest_resilient_circuits.BasicResilientMock
cafile = false
stomp_port = 65001
port = 443
loglevel = INFO

[custom_threat_service]
urlbase = /cts
"""

# Beside the original file: refuse to run against any rc_cts but this project's.
CONFTEST = """\
import os
import rc_cts

def pytest_sessionstart(session):
    here = os.path.realpath(os.path.dirname(rc_cts.__file__))
    assert here == os.path.realpath(os.environ["RC_CTS_UNDER_TEST"]), f"imported rc_cts from {here}"
"""

# Our fixtures and pytest-resilient-circuits' in one session, in one process: no clash.
BOTH_PLUGINS = """\
from searchers_example.example import ExampleSearcher

def test_cts_lookup_beside_circuits_app(cts_lookup):
    hits = cts_lookup(ExampleSearcher, "net.uri", "http://foo")
    assert [p["value"] for p in hits[0]["props"] if p["name"] == "id"] == [123]
"""


def fetch_original_test(dest: Path) -> bytes:
    """The original's tests/test_webserver.py, from its sdist on the package index."""
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                           "--quiet", "-d", str(dest), ORIGINAL],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"cannot fetch {ORIGINAL} from the package index, so the original's own tests "
                    f"did not run (is the index reachable?):\n{proc.stderr[-3000:]}")
    [sdist] = dest.glob("rc-cts-45.1.3279.tar.gz")
    with tarfile.open(sdist) as tar:
        data = tar.extractfile(SDIST_TEST).read()
    assert hashlib.sha256(data).hexdigest() == SDIST_TEST_SHA256, "the sdist's test file changed"
    return data


def test_the_original_packages_own_tests_pass_unmodified(tmp_path):
    with socket.socket() as probe:  # the original's tests hard-code http://localhost:9000
        if probe.connect_ex(("127.0.0.1", 9000)) == 0:
            pytest.fail("port 9000 is in use; the original's tests need it")
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "test_webserver.py").write_bytes(fetch_original_test(tmp_path / "sdist"))
    (suite / "conftest.py").write_text(CONFTEST)
    (suite / "test_both_plugins.py").write_text(BOTH_PLUGINS)
    (suite / "pytest.ini").write_text("[pytest]\n")
    (suite / "app.config").write_text(APP_CONFIG)
    env = dict(os.environ, TEST_RESILIENT_APP_CONFIG=str(suite / "app.config"),
               RC_CTS_UNDER_TEST=str(ROOT / "rc_cts"), PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA",
                           "--rootdir", str(suite), "-c", str(suite / "pytest.ini"), str(suite)],
                          cwd=suite, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    for name in ("test_server_up", "test_options", "test_post"):
        assert f"PASSED test_webserver.py::TestCustomThreatService::{name}" in out, out[-6000:]
    assert "PASSED test_both_plugins.py::test_cts_lookup_beside_circuits_app" in out
    assert "4 passed" in out
