"""Fixtures: a real threat service on a free port, run in-process or as the ``rc-cts`` command."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest
from circuits import BaseComponent, handler

from rc_cts.runner import RunningService, start_in_thread

from .redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"


def service_opts(**options) -> Dict[str, Dict[str, str]]:
    web = {"server": "127.0.0.1", "port": "0"}
    for key in ("secure", "certfile", "keyfile"):
        if key in options:
            web[key] = str(options.pop(key))
    return {"webserver": web, "custom_threat_service": {k: str(v) for k, v in options.items()}}


class Crashes(BaseComponent):
    """Records what circuits reports as raised by a handler of the Manager it is registered in
    (the HTTP server's is ``svc.service.engine``), and every exception rc_cts logs (its own
    poller catches what a connection's handling raises, logs it and closes that connection):
    a request whose handling raised is left unanswered or half handled, so no input may cause one."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: List[str] = []
        crashes = self

        class Logged(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.exc_info:
                    crashes.seen.append(f"logged: {record.getMessage()} {record.exc_info[1]!r}")

        logging.getLogger("rc_cts").addHandler(Logged(logging.ERROR))

    @handler("exception", channel="*", priority=100)
    def _on_exception(self, error_type, value, traceback, handler=None, fevent=None) -> None:
        self.seen.append(f"{error_type.__name__}: {value!r} in {handler} for {fevent!r}")

    def take(self) -> List[str]:
        """What was raised since the last call (one example's crashes are not the next one's)."""
        seen, self.seen = self.seen, []
        return seen


@pytest.fixture
def upload_dir(tmp_path):
    """An empty upload_dir of the test's own."""
    d = tmp_path / "uploads"
    d.mkdir()
    return d


@pytest.fixture
def start_service():
    """``start_service([searchers], option=value, ...)`` -> RunningService (stopped after the test)."""
    running: List[RunningService] = []

    def start(searchers, **options) -> RunningService:
        r = start_in_thread(service_opts(**options), searchers)
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


class Process:
    """``rc-cts run`` as a child process; its log is kept for assertions."""

    def __init__(self, proc: subprocess.Popen, log_path: Path):
        self.proc = proc
        self.log_path = log_path
        self.url = None

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 30) -> "Process":
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = re.search(r"listening on (https?://[\d.]+:\d+)", self.log)
            if m and "serving" in self.log or m and "no searchers" in self.log:
                self.url = m.group(1)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"rc-cts exited with {self.proc.returncode}:\n{self.log}")
            time.sleep(0.05)
        raise AssertionError(f"rc-cts did not start in {timeout}s:\n{self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def run_cli(tmp_path):
    """``run_cli(config_text, pythonpath=[...], args=[...])`` -> a started ``rc-cts run`` Process."""
    procs: List[Process] = []

    def start(config_text: Optional[str] = None, pythonpath=(), args=(), env=None,
              wait=True, module: str = "rc_cts.tools.cli") -> Process:
        cmd = [sys.executable, "-m", module, "run"]
        if config_text is not None:
            cfg = tmp_path / f"app{len(procs)}.config"
            cfg.write_text(config_text)
            cmd += ["-c", str(cfg)]
        cmd += list(args)
        environ = dict(os.environ, **(env or {}))
        environ["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
        log_path = tmp_path / f"rc-cts{len(procs)}.log"
        proc = subprocess.Popen(cmd, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
                                env=environ, cwd=tmp_path)
        p = Process(proc, log_path)
        procs.append(p)
        return p.wait_ready() if wait else p

    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def legacy_searcher_path(tmp_path_factory) -> Path:
    """The original-style searcher packages in tests/data, pip-installed into a folder of their own."""
    target = tmp_path_factory.mktemp("legacy_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target),
                    str(DATA / "legacy_searcher"), str(DATA / "legacy_resilient_searcher")], check=True)
    return target


@pytest.fixture(scope="session")
def original_searcher_path(tmp_path_factory) -> Path:
    """The original-style searcher package alone (no ResilientComponent one, which needs SOAR)."""
    target = tmp_path_factory.mktemp("original_site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(DATA / "legacy_searcher")], check=True)
    return target


@pytest.fixture(scope="session")
def certfile(tmp_path_factory):
    """A self-signed certificate and key for 127.0.0.1, in one PEM file."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path = tmp_path_factory.mktemp("tls") / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_prefix(request):
    return f"t{abs(hash(request.node.nodeid)) % 10**8}:"
