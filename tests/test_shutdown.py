"""SIGTERM as an operator sends it, to a real ``rc-cts`` process with a SQLite store: stop
accepting, cancel the queued calls (their lookups stay pending for the next start), give the
running calls a bounded grace, exit; a second signal exits at once."""
import re
import signal
import sqlite3
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

from rc_cts.tools.client import Client


def config(tmp_path, grace=10, concurrency=2):
    return "\n".join([
        "[webserver]", "server = 127.0.0.1", "port = 0", "",
        "[custom_threat_service]", "sync_wait_secs = 0", "store = sqlite",
        f"sqlite_path = {tmp_path / 'store.sqlite3'}", f"shutdown_grace_secs = {grace}", "",
        "[custom_threat_service.count]", f"max_concurrency = {concurrency}", "",
        "[count_searcher]", f"log = {tmp_path / 'runs.log'}", ""])


def post_many(url, n, secs):
    c = Client(url + "/cts")
    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(lambda i: c.post("count", {"type": "net.name", "value": f"q{i}:{secs}"}).status,
                                 range(n)))
    assert statuses == [303] * n


def exit_time(proc, signo=signal.SIGTERM, timeout=30):
    t0 = time.monotonic()
    proc.send_signal(signo)
    proc.wait(timeout)
    return time.monotonic() - t0


def pending_rows(tmp_path):
    with sqlite3.connect(tmp_path / "store.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM lookups WHERE complete = 0").fetchone()[0]


def test_sigterm_with_a_thousand_queued_lookups_exits_within_the_grace(run_cli, tmp_path):
    p = run_cli(config(tmp_path), module="tests.serve")
    post_many(p.url, 1000, 30)          # two calls run for 30 s, 998 wait in the queue
    elapsed = exit_time(p.proc)
    assert p.proc.returncode == 0
    assert 9 < elapsed < 12, elapsed    # the 10 s grace for the two running calls, then exit
    cancelled = int(re.search(r"(\d+) queued calls cancelled, 2 running", p.log).group(1))
    assert 900 <= cancelled <= 998       # the rest were still being claimed in the store
    assert "2 calls still running after 10" in p.log
    assert pending_rows(tmp_path) == 1000   # none dropped: the next start resumes them


def test_running_calls_finish_within_the_grace_and_are_stored(run_cli, tmp_path):
    p = run_cli(config(tmp_path), module="tests.serve")
    post_many(p.url, 2, 1)
    time.sleep(0.2)
    elapsed = exit_time(p.proc)
    assert elapsed < 5 and p.proc.returncode == 0
    assert pending_rows(tmp_path) == 0      # both ended and were written before the exit


def test_a_second_signal_exits_at_once(run_cli, tmp_path):
    p = run_cli(config(tmp_path), module="tests.serve")
    post_many(p.url, 4, 30)
    p.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert p.proc.poll() is None        # waiting for the running calls
    elapsed = exit_time(p.proc, signal.SIGINT)
    assert elapsed < 1 and p.proc.returncode == 128 + signal.SIGINT
    assert "signal 2 again: exiting now" in p.log


def test_only_the_main_thread_takes_shutdown_signals(run_cli, tmp_path):
    """The kernel gives a process's signal to any thread that does not block it; Python runs the
    handler in the main thread only, so a SIGTERM landing on the engine (blocked in epoll) would
    wait unseen. Every thread but the main one blocks SIGINT and SIGTERM."""
    p = run_cli(config(tmp_path), module="tests.serve")
    post_many(p.url, 4, 2)  # worker threads exist too
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    masks = {}
    for task in Path(f"/proc/{p.proc.pid}/task").iterdir():
        status = (task / "status").read_text()
        masks[int(task.name)] = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status, re.M).group(1), 16)
    assert len(masks) > 2
    assert masks.pop(p.proc.pid) & wanted == 0
    assert all(mask & wanted == wanted for mask in masks.values()), masks
    p.proc.send_signal(signal.SIGTERM)
    p.proc.wait(30)
