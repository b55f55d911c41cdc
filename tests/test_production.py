"""Running rc-cts in production, through the real CLI and a real server: `rc-cts check`, the same
checks at `rc-cts run`, logging configured from app.config, one log line per lookup, and CLI
errors as one clear line."""
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rc_cts.tools.client import Client

from .conftest import ROOT
from .redis_server import free_port
from .searchers import FailingSearcher, FindingSearcher, SleepSearcher

BIN = Path(sys.executable).parent
WEB = "[webserver]\nserver = 127.0.0.1\nport = 0\n"
# Runs the CLI with no searcher package visible (the venv has searchers_example installed).
NO_SEARCHERS = ("import sys\nfrom importlib import metadata\nreal = metadata.entry_points\n"
                "metadata.entry_points = lambda **kw: [] if kw.get('group') == "
                "'resilient.circuits.components' else real(**kw)\n"
                "from rc_cts.tools.cli import main\nsys.exit(main(sys.argv[1:]))\n")
NO_PKG_RESOURCES = ("import sys\nsys.modules['pkg_resources'] = None\n"
                    "from rc_cts.tools.cli import main\nsys.exit(main(sys.argv[1:]))\n")


def environ(pythonpath=(), env=None):
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(ROOT)])
    e.pop("APP_CONFIG_FILE", None)
    return e


def cli(*args, pythonpath=(), env=None, code=None, script=False, cwd=None):
    """``rc-cts <args>``: the module, the console script, or ``code`` (a wrapper calling main)."""
    if script:
        cmd = [str(BIN / "rc-cts")]
    elif code is not None:
        cmd = [sys.executable, "-c", code]
    else:
        cmd = [sys.executable, "-m", "rc_cts.tools.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=environ(pythonpath, env), cwd=cwd)


def write(tmp_path, text, name="app.config"):
    path = tmp_path / name
    path.write_text(text)
    return path


def one_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


# -- rc-cts check ----------------------------------------------------------------------------------
CHECK_ERRORS = [
    ("wrong type", "[webserver]\nport = many\n", 2,
     "error: [webserver] option 'port': 'many' is not a valid int"),
    ("unknown option", "[custom_threat_service]\nsync_wait = 2\n", 2,
     "error: [custom_threat_service] option 'sync_wait': unknown option (did you mean 'sync_wait_secs'?)"),
    ("option of another section", "[custom_threat_service]\nport = 9000\n", 2,
     "error: [custom_threat_service] option 'port': unknown option (it belongs in [webserver])"),
    ("unknown limit", "[custom_threat_service.example]\nmax_concurency = 4\n", 2,
     "error: [custom_threat_service.example] option 'max_concurency': unknown option "
     "(did you mean 'max_concurrency'?)"),
    ("unset variable", "[custom_threat_service]\nauth_user = u\nauth_password = $RC_CTS_TEST_UNSET\n", 2,
     "error: [custom_threat_service] option 'auth_password': $RC_CTS_TEST_UNSET is not set in the environment"),
    ("unset variable, braces", "[reputation_searcher]\napi_key = ${RC_CTS_TEST_UNSET}\n", 2,
     "error: [reputation_searcher] option 'api_key': $RC_CTS_TEST_UNSET is not set in the environment"),
    ("bad value", "[custom_threat_service]\nworkers = 0\n", 2,
     "error: [custom_threat_service] option 'workers' must be greater than 0"),
    ("log level", "[resilient]\nloglevel = verbose\n", 2,
     "error: [resilient] option 'loglevel': 'verbose' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("misspelt log option", "[resilient]\nhost = soar\nlog_level = DEBUG\n", 2,
     "error: [resilient] option 'log_level': unknown option (did you mean 'loglevel'?)"),
    ("log format", "[resilient]\nlog_format = xml\n", 2,
     "error: [resilient] option 'log_format': 'xml' is not one of plain, json"),
    ("unreadable certfile", "[webserver]\nsecure = true\ncertfile = /no/such/cert.pem\n", 1,
     "error: [webserver] option 'certfile': cannot read '/no/such/cert.pem': No such file or directory"),
]


@pytest.mark.parametrize("config,code,line", [c[1:] for c in CHECK_ERRORS], ids=[c[0] for c in CHECK_ERRORS])
def test_check_names_each_error_with_its_section_and_option(tmp_path, config, code, line):
    out = cli("check", "-c", write(tmp_path, config))
    assert out.returncode == code, out.stdout + out.stderr
    assert line in out.stdout.splitlines(), out.stdout
    assert "Traceback" not in out.stdout + out.stderr


def test_check_reports_every_problem_one_per_line(tmp_path):
    cfg = write(tmp_path, "[webserver]\nport = many\nsecure = perhaps\n[custom_threat_service]\nsync_wait = 2\n"
                          "[feeds_searcher]\nreload_check_secs = 3\n")
    out = cli("check", "-c", cfg)
    assert out.returncode == 2
    problems = [line for line in out.stdout.splitlines() if line.startswith(("error:", "warning:"))]
    assert len(problems) == 4, out.stdout
    assert "error: [webserver] option 'secure': 'perhaps' is not a valid bool" in problems
    assert out.stdout.splitlines()[-1] == "3 errors, 1 warning"


def test_check_unknown_section_is_a_warning_with_did_you_mean(tmp_path):
    out = cli("check", "-c", write(tmp_path, WEB + "[feeds_searcher]\nreload_check_secs = 3\n[other_app]\nx = 1\n"))
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert ("warning: [feeds_searcher]: unknown section: no installed package declares it "
            "(did you mean [feed_searcher]?)") in lines
    assert "warning: [other_app]: unknown section: no installed package declares it" in lines
    assert lines[-1] == "0 errors, 2 warnings"


def test_check_resilient_section_belongs_to_resilient_circuits_too(tmp_path):
    out = cli("check", "-c", write(tmp_path, "[resilient]\nhost = soar\norg = X\nstomp_prot = 1\nsome_plugin_option = x\n"))
    assert out.returncode == 0, out.stdout
    problems = [line for line in out.stdout.splitlines() if line.startswith(("error:", "warning:"))]
    assert problems == ["warning: [resilient] option 'stomp_prot': unknown option (did you mean 'stomp_port'?)"]


def test_check_lists_services_and_their_artifact_types(tmp_path):
    out = cli("check", "-c", write(tmp_path, WEB + "[feed_searcher]\nfeed.mine = /x.csv\n"))
    assert out.returncode == 0, out.stdout + out.stderr
    rows = {line.split()[0]: line for line in out.stdout.splitlines() if line.startswith("  ")}
    assert "net.uri" in rows["example"] and "ExampleSearcher" in rows["example"]
    assert "net.ip" in rows["feeds"] and "hash.sha256" in rows["feeds"]
    assert out.stdout.splitlines()[-1] == "0 errors, 0 warnings"


def test_check_an_unwritable_sqlite_store(tmp_path):
    (tmp_path / "a_dir.sqlite3").mkdir()
    out = cli("check", "-c", write(tmp_path, f"[custom_threat_service]\nstore = sqlite\n"
                                             f"sqlite_path = {tmp_path / 'a_dir.sqlite3'}\n"))
    assert out.returncode == 1
    assert any(line.startswith("error: [custom_threat_service] option 'sqlite_path': cannot open the SQLite store")
               for line in out.stdout.splitlines()), out.stdout


def test_check_a_redis_store_that_refuses_and_masks_its_password(tmp_path):
    port = free_port()
    out = cli("check", "-c", write(tmp_path, f"[custom_threat_service]\nstore = redis\n"
                                             f"redis_url = redis://:s3cret@127.0.0.1:{port}/0\n"))
    assert out.returncode == 1
    [line] = [line for line in out.stdout.splitlines() if "redis_url" in line]
    assert line.startswith(f"error: [custom_threat_service] option 'redis_url': Redis store "
                           f"redis://:***@127.0.0.1:{port}/0"), line
    assert "s3cret" not in out.stdout + out.stderr


def test_check_a_reachable_redis_store(tmp_path, redis_server, redis_prefix):
    out = cli("check", "-c", write(tmp_path, f"[custom_threat_service]\nstore = redis\nredis_url = {redis_server.url}\n"
                                             f"redis_prefix = {redis_prefix}\n"))
    assert out.returncode == 0, out.stdout


def test_check_and_run_name_searchers_that_fail_to_load_with_the_fix(tmp_path, legacy_searcher_path):
    cfg = write(tmp_path, WEB)
    out = cli("check", "-c", cfg, code=NO_PKG_RESOURCES, pythonpath=[legacy_searcher_path])
    assert out.returncode == 1
    [line] = [line for line in out.stdout.splitlines() if "LegacyExampleSearcher" in line]
    assert line.startswith("error: searcher LegacyExampleSearcher (rc-cts-legacy-example) not loaded: ")
    assert "pip install 'rc-cts[legacy]'" in line
    assert "example" in out.stdout  # the others are listed
    run = cli("run", "-c", cfg, code=NO_PKG_RESOURCES, pythonpath=[legacy_searcher_path])
    assert run.returncode == 1 and "listening on" not in run.stderr
    [logged] = [line for line in run.stderr.splitlines() if "LegacyExampleSearcher" in line]
    assert "ERROR" in logged and "pip install 'rc-cts[legacy]'" in logged and "Traceback" not in run.stderr


def test_no_searcher_is_an_error_unless_allow_empty(tmp_path):
    cfg = write(tmp_path, WEB)
    out = cli("check", "-c", cfg, code=NO_SEARCHERS)
    assert out.returncode == 1
    assert "error: no searcher is installed (install a searcher package; rc-cts run --allow-empty starts anyway)" \
        in out.stdout.splitlines()
    run = cli("run", "-c", cfg, code=NO_SEARCHERS)
    [error] = [line for line in run.stderr.splitlines() if " ERROR " in line]
    assert run.returncode == 1 and "cannot start: no searcher is installed" in error, run.stderr
    proc = subprocess.Popen([sys.executable, "-c", NO_SEARCHERS, "run", "-c", str(cfg), "--allow-empty"],
                            stderr=subprocess.PIPE, text=True, env=environ())
    try:
        deadline = time.time() + 30
        seen = ""
        while "listening on" not in seen and time.time() < deadline:
            seen += proc.stderr.readline()
        assert "listening on" in seen, seen
    finally:
        proc.terminate()
        proc.wait(10)


def test_run_refuses_to_start_on_errors_one_line_each(run_cli):
    proc = run_cli("[webserver]\nport = many\n[custom_threat_service]\nsync_wait = 2\n", wait=False)
    assert proc.proc.wait(30) == 2
    errors = [line for line in proc.log.splitlines() if " ERROR " in line]
    assert len(errors) == 2 and "Traceback" not in proc.log and "listening on" not in proc.log
    assert "[webserver] option 'port': 'many' is not a valid int" in errors[0]
    assert "[custom_threat_service] option 'sync_wait': unknown option (did you mean 'sync_wait_secs'?)" in errors[1]


def test_run_starts_despite_warnings(run_cli):
    proc = run_cli(WEB + "[feeds_searcher]\nx = 1\n")
    assert "WARNING [rc_cts] [feeds_searcher]: unknown section" in proc.log


def test_run_refuses_an_unset_variable(run_cli):
    proc = run_cli(WEB + "[custom_threat_service]\nauth_user = u\nauth_password = $RC_CTS_TEST_UNSET\n", wait=False)
    assert proc.proc.wait(30) == 2
    assert "[custom_threat_service] option 'auth_password': $RC_CTS_TEST_UNSET is not set" in proc.log


# -- CLI errors: one clear line ------------------------------------------------------------------
def test_bind_error_names_the_address_and_port(run_cli):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run_cli(f"[webserver]\nserver = 127.0.0.1\nport = {port}\n", wait=False)
        assert proc.proc.wait(30) == 1
    [error] = [line for line in proc.log.splitlines() if " ERROR " in line]
    assert f"cannot listen on 127.0.0.1:{port}" in error and "Address already in use" in error
    assert "Traceback" not in proc.log


@pytest.mark.parametrize("args,words", [
    (["--log-level", "verbose", "searchers"], ["--log-level", "'verbose'", "DEBUG"]),
    (["searchers", "--log-level", "verbose"], ["--log-level", "'verbose'"]),
    (["lookup", "--url", "localhost:9000/cts/example", "net.ip", "1.2.3.4"], ["--url", "http://"]),
    (["lookup", "--url", "http:///cts/example", "net.ip", "1.2.3.4"], ["--url", "host"]),
    (["run", "-c", "/no/such/app.config"], ["/no/such/app.config", "No such file"]),
    (["check", "-c", "/no/such/app.config"], ["/no/such/app.config", "No such file"]),
    (["lookup", "-c", "/no/such/app.config", "net.ip", "1.2.3.4"], ["/no/such/app.config"]),
])
def test_cli_errors_are_one_clear_line(args, words):
    out = cli(*args)
    assert out.returncode == 2, out.stderr
    line = one_line(out.stderr)
    assert all(w in line for w in words), line
    assert out.stdout == ""


def test_a_config_file_that_does_not_parse_is_one_line(tmp_path):
    out = cli("check", "-c", write(tmp_path, "[webserver]\nport = 1\n[webserver]\nport = 2\n"))
    assert out.returncode == 2 and "section 'webserver' already exists" in one_line(out.stderr)


def test_global_options_before_and_after_the_subcommand(tmp_path):
    cfg = write(tmp_path, "[webserver]\nport = many\n")
    for args in (["--log-level", "INFO", "-c", cfg, "check"], ["check", "-c", cfg, "--log-level", "INFO"],
                 ["--log-level", "INFO", "check", "-c", cfg], ["-c", cfg, "check", "--log-level", "info"]):
        out = cli(*args, script=True)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "error: [webserver] option 'port': 'many' is not a valid int" in out.stdout, args
        assert f"INFO [rc_cts] config file: {cfg}" in out.stderr, args   # INFO: check's default is WARNING
    quiet = cli("check", "-c", cfg, script=True)
    assert "config file" not in quiet.stderr


# -- logging from app.config -----------------------------------------------------------------------
def stop(proc):
    proc.proc.send_signal(signal.SIGTERM)
    proc.proc.wait(15)
    return proc.log


def test_json_log_lines(run_cli):
    proc = run_cli(WEB + "[resilient]\nlog_format = json\n")
    c = Client(proc.url + "/cts")
    assert c.post("example", {"type": "net.uri", "value": "http://json.example"}).status == 200
    lines = [json.loads(line) for line in stop(proc).splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", lines[0]["time"])
    [access] = [e for e in lines if e["logger"] == "rc_cts.access"]
    assert access["level"] == "INFO" and access["message"].startswith("POST /cts/example 200 ")


def test_json_formatter_carries_the_exception_text():
    from rc_cts.logs import JsonFormatter
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = logging.LogRecord("rc_cts.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "failed here" and entry["level"] == "ERROR" and entry["logger"] == "rc_cts.x"
    assert "Traceback" in entry["exc"] and "RuntimeError: boom" in entry["exc"]
    assert "\n" not in JsonFormatter().format(record)


def test_log_file_with_rotation(run_cli, tmp_path):
    logs = tmp_path / "logs"
    proc = run_cli(WEB + f"[resilient]\nlogdir = {logs}\nlogfile = cts.log\nlog_max_bytes = 100000\n"
                         "log_backup_count = 2\n")
    c = Client(proc.url + "/cts")
    for i in range(4000):  # ~300 kB of access lines
        assert c.options("example").status == 200
    stop(proc)
    files = sorted(p.name for p in logs.iterdir())
    assert files == ["cts.log", "cts.log.1", "cts.log.2"], files   # log_backup_count old files, no more
    assert all((logs / f).stat().st_size <= 100000 for f in files)
    assert "OPTIONS /cts/example 200" in (logs / "cts.log.2").read_text()
    assert "listening on" in proc.log   # stderr too


def test_log_level_from_app_config(run_cli):
    proc = run_cli(WEB + "[resilient]\nloglevel = DEBUG\n")
    c = Client(proc.url + "/cts")
    c.post("example", {"type": "net.uri", "value": "http://debug.example"})
    assert " DEBUG " in stop(proc)


def info_lines_between_start_and_stop(log):
    lines = log.splitlines()
    start = max(i for i, line in enumerate(lines) if "listening on" in line)
    end = min(i for i, line in enumerate(lines) if "stopping on signal" in line)
    return [line for line in lines[start + 1:end] if " INFO " in line]


def test_exactly_one_info_line_per_lookup_and_no_value_at_info(run_cli):
    secret = "http://artifact-value.example/private"
    cfg = WEB + "[custom_threat_service]\nsync_wait_secs = 0\n"
    proc = run_cli(cfg)
    c = Client(proc.url + "/cts")
    r = c.post("example", {"type": "net.uri", "value": secret})
    assert r.status == 303
    rid = r.json["id"]
    time.sleep(0.3)
    assert c.get("example", rid).status == 200
    assert c.options("example").status == 200
    assert c.post("example", {"type": "net.uri", "value": secret}).status == 200  # a rescan, from the store
    log = stop(proc)
    info = info_lines_between_start_and_stop(log)
    assert len(info) == 4, "\n".join(info)
    post, get, options, rescan = info
    assert f"POST /cts/example 303 " in post and f"lookup={rid} service=example type=net.uri outcome=pending " \
        "waiting=ExampleSearcher._lookup_net_uri hits=0" in post
    assert f"GET /cts/example/{rid} 200 " in get and f"lookup={rid} service=example type=net.uri outcome=whole hits=2" in get
    assert "OPTIONS /cts/example 200 " in options and "lookup=" not in options
    assert "POST /cts/example 200 " in rescan and "outcome=cached hits=2" in rescan  # every answer from the cache
    assert secret not in log
    debug = run_cli(cfg, args=["--log-level", "DEBUG"])
    Client(debug.url + "/cts").post("example", {"type": "net.uri", "value": secret})
    assert secret in stop(debug)


def test_an_incomplete_lookup_names_the_missing_searchers(start_service, caplog):
    caplog.set_level(logging.INFO, logger="rc_cts")
    svc = start_service([FailingSearcher(), FindingSearcher()], sync_wait_secs=2)
    r = svc.client().post("mixed", {"type": "net.uri", "value": "http://x"})
    assert r.status == 303
    [line] = [rec.getMessage() for rec in caplog.records if rec.name == "rc_cts.access"]
    assert f"lookup={r.json['id']} service=mixed type=net.uri outcome=incomplete missing=FailingSearcher.fail " \
           "hits=3" in line, line
    assert len([rec for rec in caplog.records if rec.levelno == logging.INFO and r.json["id"] in rec.getMessage()]) == 1


def test_unknown_artifact_type_is_accepted_and_logged_once(run_cli):
    proc = run_cli(WEB)
    c = Client(proc.url + "/cts")
    for kind in ("net.strange", "net.strange", "custom.other", "net.strange", "net.uri"):
        assert c.post("example", {"type": kind, "value": "x"}).status == 200
    log = stop(proc)
    warnings = [line for line in log.splitlines() if " WARNING " in line and "artifact type" in line]
    assert len(warnings) == 2, "\n".join(warnings)
    assert "'net.strange'" in warnings[0] and "'custom.other'" in warnings[1]


def test_get_without_an_id_says_so(start_service):
    svc = start_service([SleepSearcher()])
    c = Client(svc.url)
    for path in ("/slow", "/slow/"):
        r = c.request("GET", path)
        assert r.status == 405 and r.headers["allow"] == "OPTIONS, POST", r
        assert r.json["error"] == ("GET needs a lookup id: GET /cts/slow/<id>, with the id a POST "
                                   "to /cts/slow answered"), r.json
    assert c.request("GET", "/nosuch").status == 404
    assert "unknown threat service 'nosuch'" in c.request("GET", "/nosuch").json["error"]
    assert c.request("GET", "/slow/123").status == 200


# -- rc-cts lookup --url ---------------------------------------------------------------------------
def test_lookup_shows_progress_and_json_prints_only_the_answer(start_service):
    svc = start_service([SleepSearcher()], sync_wait_secs=0.1, first_retry_secs=0.2, later_retry_secs=0.2)
    out = cli("lookup", "--url", f"{svc.url}/slow", "net.name", "sleep:0.7", "--json")
    assert out.returncode == 0, out.stderr
    [result] = json.loads(out.stdout)
    assert result["status"] == 200 and result["body"]["hits"]
    progress = [line for line in out.stderr.splitlines() if "303" in line]
    assert progress and "0 hits so far" in progress[0] and "asking again in 0.2 s" in progress[0], out.stderr
    assert "waiting for SleepSearcher" in progress[0], out.stderr  # from the 303's X-Pending-Searchers
    table = cli("lookup", "--url", f"{svc.url}/slow", "net.name", "sleep:0.71")
    assert "303" in table.stderr and "200, 1 hit" in table.stdout


def test_lookup_in_process_names_the_searchers_it_waits_for(tmp_path):
    cfg = write(tmp_path, (f"[custom_threat_service]\nsync_wait_secs = 0.1\nfirst_retry_secs = 0.2\n"
                           f"later_retry_secs = 0.2\nmax_retries = 1\nincomplete_retry_secs = 0.1\n"
                           f"[reputation_searcher]\nurl = http://127.0.0.1:{free_port()}/a\n"
                           "api_key = k\nmax_attempts = 2\nbackoff_secs = 0.3\n"))
    out = cli("lookup", "-c", cfg, "--service", "reputation", "net.ip", "192.0.2.1", "--json")
    [result] = json.loads(out.stdout)
    assert "waiting for ReputationSearcher." in out.stderr, out.stderr
