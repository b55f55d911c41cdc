"""Results that survive restarts (SQLite) and replicas that share the work (Redis), end to end:
real processes, real HTTP, SIGKILL, and a Redis restarted under load."""
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rc_cts.tools.client import Client

from .searchers import HitSearcher

SLOW = 2.0


def config(tmp_path, store_lines, **extra):
    lines = ["[webserver]", "server = 127.0.0.1", "port = 0", "", "[custom_threat_service]",
             "sync_wait_secs = 0.2", "first_retry_secs = 1", "later_retry_secs = 1", "lease_secs = 1",
             *store_lines, *(f"{k} = {v}" for k, v in extra.items()),
             "", "[count_searcher]", f"log = {tmp_path / 'runs.log'}", ""]
    return "\n".join(lines)


def runs(tmp_path):
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def poll_until_done(client, service, rid, seconds=20):
    """GET as the platform does; every answer must be 200 or 303: never a 404."""
    statuses = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        r = client.get(service, rid)
        statuses.append(r.status)
        assert r.status in (200, 303), r
        if r.status == 200:
            return r, statuses
        time.sleep(0.1)
    raise AssertionError(f"still pending after {seconds}s: {statuses[-5:]}")


def kill(proc):
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)


def test_sqlite_results_and_pending_lookups_survive_a_restart(run_cli, tmp_path):
    cfg = config(tmp_path, ["store = sqlite", f"sqlite_path = {tmp_path / 'cts.sqlite3'}"])
    a = run_cli(cfg, module="tests.serve")
    c = Client(a.url + "/cts")
    done = c.post("count", {"type": "net.name", "value": "fast:0"})
    assert done.status == 200
    pending = c.post("count", {"type": "net.name", "value": f"slow:{SLOW}"})
    assert pending.status == 303
    kill(a)  # mid-lookup
    b = run_cli(cfg, module="tests.serve")
    c = Client(b.url + "/cts")
    assert c.get("count", done.json["id"]).json == done.json   # an id from before the restart
    r, _ = poll_until_done(c, "count", pending.json["id"])
    assert r.json["hits"][0]["props"][0]["value"] == "slow"
    assert "resumed lookup" in b.log
    assert [line.split()[1] for line in runs(tmp_path)] == ["fast", "slow", "slow"]  # re-run after the crash


@pytest.fixture
def replicas(run_cli, tmp_path, redis_server, redis_prefix):
    def start(n=2):
        cfg = config(tmp_path, ["store = redis", f"redis_url = {redis_server.url}", f"redis_prefix = {redis_prefix}"])
        return [run_cli(cfg, module="tests.serve") for _ in range(n)]
    return start


def test_post_on_one_replica_get_on_another(replicas, tmp_path):
    a, b = replicas()
    ca, cb = Client(a.url + "/cts"), Client(b.url + "/cts")
    r = ca.post("count", {"type": "net.name", "value": "quick:0"})
    assert r.status == 200
    assert cb.get("count", r.json["id"]).json == r.json
    slow = ca.post("count", {"type": "net.name", "value": "later:1"})
    assert slow.status == 303
    got, _ = poll_until_done(cb, "count", slow.json["id"])
    assert got.json["hits"][0]["props"][0]["value"] == "later"
    assert [line.split()[1] for line in runs(tmp_path)] == ["quick", "later"]


def test_identical_lookups_on_several_replicas_run_the_searchers_once(replicas, tmp_path):
    a, b = replicas()
    clients = [Client(p.url + "/cts") for p in (a, b, a, b, a, b)]
    results = []
    threads = [threading.Thread(target=lambda c=c: results.append(
        c.lookup("count", {"type": "net.name", "value": "once:0.5"}, poll_secs=0.1)[0])) for c in clients]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [r.status for r in results] == [200] * 6
    assert len({str(r.json) for r in results}) == 1
    assert len(runs(tmp_path)) == 1 and runs(tmp_path)[0].split()[1] == "once"


def test_a_killed_replicas_lookup_is_taken_over(replicas, tmp_path):
    a, b = replicas()
    r = Client(a.url + "/cts").post("count", {"type": "net.name", "value": f"orphan:{SLOW}"})
    assert r.status == 303
    time.sleep(0.3)
    kill(a)
    got, statuses = poll_until_done(Client(b.url + "/cts"), "count", r.json["id"])
    assert got.json["hits"][0]["props"][0]["value"] == "orphan"
    owners = [line.split()[0] for line in runs(tmp_path)]
    assert len(owners) == 2 and owners[0] == str(a.proc.pid) and owners[1] == str(b.proc.pid)


def test_redis_restarted_under_load(replicas, redis_server, tmp_path):
    a, b = replicas()
    ca, cb = Client(a.url + "/cts", timeout=10), Client(b.url + "/cts", timeout=10)
    before = ca.post("count", {"type": "net.name", "value": "before:0"})
    assert before.status == 200
    running = ca.post("count", {"type": "net.name", "value": "during:1"})  # completes while Redis is down
    assert running.status == 303

    seen, stop = set(), threading.Event()

    def load():
        i = 0
        while not stop.is_set():
            i += 1
            for c in (ca, cb):
                seen.add(c.post("test", {"type": "net.uri", "value": f"http://load/{i}"}).status)
                seen.add(c.get("count", before.json["id"]).status)
            time.sleep(0.02)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        time.sleep(0.3)
        redis_server.stop()
        time.sleep(2.0)
        down = {cb.get("count", before.json["id"]).status, ca.post("test", {"type": "net.uri", "value": "x"}).status}
        assert down <= {503, 303}
        redis_server.start()
        time.sleep(1.5)
    finally:
        stop.set()
        loader.join()
    assert seen <= {200, 303, 503} and 503 in seen and 200 in seen
    assert cb.get("count", before.json["id"]).json == before.json          # written before: not lost
    got, _ = poll_until_done(cb, "count", running.json["id"])              # finished during the outage
    assert got.json["hits"][0]["props"][0]["value"] == "during"
    assert ca.post("test", {"type": "net.uri", "value": "after"}).status == 200  # recovered by itself
    assert "the store is back" in a.log


def test_a_hung_redis_never_stalls_the_front(start_service, redis_server, redis_prefix):
    svc = start_service([HitSearcher()], store="redis", redis_url=redis_server.url, redis_prefix=redis_prefix)
    c = svc.client()
    assert c.post("test", {"type": "net.uri", "value": "http://before"}).status == 200
    redis_server.proc.send_signal(signal.SIGSTOP)  # answers nothing, refuses nothing
    try:
        with ThreadPoolExecutor(8) as pool:
            posts = [pool.submit(timed, c.post, "test", {"type": "net.uri", "value": f"http://hung/{i}"})
                     for i in range(6)]
            gets = [pool.submit(timed, c.get, "test", "00000000-0000-0000-0000-000000000000") for _ in range(2)]
            time.sleep(0.3)
            for _ in range(3):  # while those wait on the store
                elapsed, r = timed(c.options, "test")
                assert r.status == 200 and elapsed < 1.0
            for future in posts + gets:
                elapsed, r = future.result()
                assert r.status == 503 and r.headers["retry-after"] == "5" and elapsed < 2.0
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)
    deadline = time.time() + 10
    r = None
    while time.time() < deadline:  # recovers by itself
        r = c.post("test", {"type": "net.uri", "value": "http://after"})
        if r.status == 200:
            break
        time.sleep(0.2)
    assert r.status == 200 and r.json["hits"]


def timed(fn, *args):
    t0 = time.perf_counter()
    r = fn(*args)
    return time.perf_counter() - t0, r


def test_two_replicas_share_one_rate_limit_through_redis(run_cli, tmp_path, redis_server, redis_prefix):
    cfg = config(tmp_path, ["store = redis", f"redis_url = {redis_server.url}", f"redis_prefix = {redis_prefix}"])
    cfg += "\n[custom_threat_service.count]\nrate_limit = 3 per 2 seconds, 100/day\n"
    a, b = [run_cli(cfg, module="tests.serve") for _ in range(2)]
    clients = [Client(a.url + "/cts"), Client(b.url + "/cts")]
    posts = [clients[i % 2].post("count", {"type": "net.name", "value": f"q{i}:0"}) for i in range(12)]
    assert all(r.status in (200, 303) for r in posts)
    for i, r in enumerate(posts):  # every one completes, none dropped or answered empty
        done, _ = poll_until_done(clients[i % 2], "count", r.json["id"], seconds=30)
        assert done.json["hits"][0]["props"][0]["value"] == f"q{i}"
    lines = [line.split() for line in runs(tmp_path)]
    assert sorted(label for _, label, _ in lines) == sorted(f"q{i}" for i in range(12))
    assert len({pid for pid, _, _ in lines}) == 2            # both replicas made calls
    times = sorted(float(t) for _, _, t in lines)
    worst = max(sum(1 for t in times if start <= t < start + 2.0) for start in times)
    assert worst <= 3, times                                   # never more than 3 in any 2 s, together
    assert times[-1] - times[0] >= 6.0                         # 12 calls at 3 per 2 s take 6 s at least
