"""The Dockerfile and compose.yaml: what can be checked without Docker always is (the files the
Dockerfile copies exist, its healthcheck command asks /healthz for a 200, the container's
app.config is valid); the image is built only where a Docker daemon runs and already has the
base image (a build must not pull it from the internet), and is skipped otherwise, saying why."""
import re
import shlex
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rc_cts.config.settings import Settings, read_config_file, settings_from_opts

from .conftest import ROOT
from .redis_server import free_port

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
CONTAINER_CONFIG = ROOT / "docker" / "app.config"


def instructions(path: Path = DOCKERFILE):
    """``[(INSTRUCTION, arguments)]``, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                           if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def one(name: str) -> str:
    [args] = [a for i, a in instructions() if i == name]
    return args


def test_every_file_the_dockerfile_copies_exists():
    copies = [(i, shlex.split(a)) for i, a in instructions() if i in ("COPY", "ADD")]
    assert copies
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for instruction, args in copies:
        sources = [a for a in args if not a.startswith("--")][:-1]
        assert sources, (instruction, args)
        for source in sources:
            assert (ROOT / source).exists(), f"{instruction} {source}: no such file in the repository"
            assert source not in ignored, f"{instruction} {source} is excluded by .dockerignore"


def test_the_image_installs_ours_and_runs_as_a_user_with_volumes():
    assert one("FROM").startswith("python:") and "slim" in one("FROM")
    user = one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    volumes = set(re.findall(r'"([^"]+)"', one("VOLUME")))
    config = read_config_file(str(CONTAINER_CONFIG))
    cts = config["custom_threat_service"]
    assert "/etc/rc-cts" in volumes                                   # the config
    for option in ("upload_dir", "sqlite_path"):                      # the data, writable by the user
        assert any(cts[option].startswith(v + "/") for v in volumes), option
    assert "APP_CONFIG_FILE=/etc/rc-cts/app.config" in one("ENV")
    assert any(i == "COPY" and a.split()[-1] == "/etc/rc-cts/app.config" for i, a in instructions())
    assert shlex.split(one("CMD").strip("[]").replace(",", " ")) == ["rc-cts", "run"]
    assert one("EXPOSE") == "9000" and "RC_CTS_PORT=9000" in one("ENV")


def test_the_container_config_is_valid(monkeypatch, tmp_path):
    def settings() -> Settings:
        opts = read_config_file(str(CONTAINER_CONFIG))
        opts["custom_threat_service"]["upload_dir"] = str(tmp_path)  # the image's path is not here
        return settings_from_opts(opts)

    for name in ("RC_CTS_PORT", "RC_CTS_STORE", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    s = settings()
    assert (s.server, s.port, s.store, s.redis_url) == ("0.0.0.0", 9000, "memory", Settings.redis_url)
    monkeypatch.setenv("RC_CTS_PORT", "9100")
    monkeypatch.setenv("RC_CTS_STORE", "redis")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    s = settings()
    assert (s.port, s.store, s.redis_url) == (9100, "redis", "redis://redis:6379/0")


class HealthStandIn(BaseHTTPRequestHandler):
    status = 200
    paths = []

    def do_GET(self):
        type(self).paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_healthcheck_asks_healthz_for_a_200():
    args = one("HEALTHCHECK")
    assert "127.0.0.1" in args and "/healthz" in args
    command = shlex.split(args[args.index("CMD ") + 4:])
    assert command[0] == "python"
    command[0] = sys.executable
    server = ThreadingHTTPServer(("127.0.0.1", 0), HealthStandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = str(server.server_address[1])

    def check(port: str) -> int:
        return subprocess.run(command, env={"RC_CTS_PORT": port}, capture_output=True, timeout=30).returncode

    try:
        assert check(port) == 0
        assert HealthStandIn.paths == ["/healthz"]
        HealthStandIn.status = 503
        assert check(port) != 0
    finally:
        server.shutdown()
        server.server_close()
    assert check(str(free_port())) != 0  # nothing listening


def test_compose_runs_two_replicas_on_one_redis():
    text = COMPOSE.read_text()
    services = re.search(r"^services:\n(.*?)(?=^\S|\Z)", text, re.M | re.S).group(1)
    names = re.findall(r"^  ([\w-]+):", services, re.M)
    assert names == ["redis", "rc-cts-1", "rc-cts-2"]
    ports = re.findall(r'- "(\d+):9000"', services)
    assert len(ports) == 2 and len(set(ports)) == 2
    assert "build: ." in text and "RC_CTS_STORE: redis" in text and "REDIS_URL: redis://redis:6379/0" in text
    assert '"--appendonly", "yes"' in text                      # results survive a Redis restart
    grace = int(re.search(r"stop_grace_period: (\d+)s", text).group(1))
    assert grace > Settings.shutdown_grace_secs


def docker_ready(image: str):
    """None when the daemon runs and has ``image``; else why the build cannot run here."""
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"no docker: {exc}"
    if info.returncode != 0:
        return "`docker info` fails: " + (info.stderr.strip().splitlines() or ["no daemon"])[-1]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, timeout=30).returncode != 0:
        return f"the base image {image} is not present locally (the tests do not pull it)"
    return None


def test_the_image_builds_and_runs():
    base = one("FROM").split()[0]
    reason = docker_ready(base)
    if reason:
        pytest.skip(reason)
    tag = "rc-cts-test:build"
    build = subprocess.run(["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    out = subprocess.run(["docker", "run", "--rm", tag, "rc-cts", "--version"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("rc-cts 46"), out.stdout + out.stderr
    user = subprocess.run(["docker", "run", "--rm", tag, "id", "-u"], capture_output=True, text=True, timeout=120)
    assert user.stdout.strip() == "10001"
