"""Stores: GET of a completed result with 1,000,000 results stored (memory, sqlite, redis), and
lookups/s with the 100 ms searcher for one process and for two replicas sharing one Redis.

    python benchmarks/bench_stores.py [--results 1000000] [--seconds 5]

Needs redis-server (apt-get install redis-server).
"""
import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_lookups import rss_mb, sim, start_service  # noqa: E402
from prefill import artifact  # noqa: E402
from rc_cts.http.protocol import request_id  # noqa: E402
from redis_server import RedisServer  # noqa: E402


def get_latency(url: str, n_results: int, seconds: float, threads: int = 8):
    host, port = url.split("//")[1].split("/")[0].split(":")
    stop = time.perf_counter() + seconds
    lat, statuses = [], set()
    lock = threading.Lock()

    def worker(seed):
        rnd = random.Random(seed)
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        while time.perf_counter() < stop:
            rid = request_id("bench", artifact(rnd.randrange(n_results)))
            t = time.perf_counter()
            conn.request("GET", f"/cts/bench/{rid}")
            r = conn.getresponse()
            r.read()
            mine.append(time.perf_counter() - t)
            statuses.add(r.status)
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(worker, range(threads)))
    wall = time.perf_counter() - t0
    lat.sort()
    return len(lat) / wall, lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000, statuses


def redis_rss(server) -> float:
    return rss_mb(server.proc.pid)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--lookups", type=int, default=2000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    redis = RedisServer(tmp).start()
    try:
        print(f"GET of a completed result, {args.results:,} results stored, 8 clients:")
        for kind, extra in (("memory", []), ("sqlite", [f"sqlite_path={tmp / 'bench.sqlite3'}"]),
                            ("redis", [f"redis_url={redis.url}"])):
            t0 = time.perf_counter()
            proc, url = start_service(4, 0.1, "WARNING", [f"store={kind}", f"cache_size={args.results * 2}",
                                                           "cache_ttl=86400", *extra],
                                      extra_args=["--prefill", str(args.results)])
            fill = time.perf_counter() - t0
            try:
                rate, p50, p99, statuses = get_latency(url, args.results, args.seconds)
                note = f", redis-server {redis_rss(redis):.0f} MB" if kind == "redis" else ""
                print(f"  {kind:7s} p50 {p50:5.2f} ms  p99 {p99:5.2f} ms  {rate:7.0f} GETs/s  statuses {sorted(statuses)}"
                      f"  service {rss_mb(proc.pid):6.0f} MB resident{note}  (filled in {fill:.0f} s)")
            finally:
                proc.terminate()
                proc.wait()
        print(f"lookups/s, searcher blocks 100 ms, workers 128, {args.lookups} lookups, 64 concurrent:")
        one, url = start_service(128, 0.1, "WARNING", ["store=redis", f"redis_url={redis.url}", "redis_prefix=one:"])
        try:
            r = sim("bench", url + "/bench", "--n", str(args.lookups), "--conc", "64")
            print(f"  one process, Redis store: {r['lookups_per_s']:7.1f} lookups/s  p50 {r['p50_s'] * 1000:.0f} ms"
                  f"  p99 {r['p99_s'] * 1000:.0f} ms  statuses {r['statuses']}")
        finally:
            one.terminate()
            one.wait()
        pair = [start_service(128, 0.1, "WARNING", ["store=redis", f"redis_url={redis.url}", "redis_prefix=two:"])
                for _ in range(2)]
        try:
            half = str(args.lookups // 2)
            out = {}
            threads = [threading.Thread(target=lambda i=i, u=u: out.__setitem__(i, sim(
                "bench", u + "/bench", "--n", half, "--conc", "32"))) for i, (_, u) in enumerate(pair)]
            t0 = time.perf_counter()
            [t.start() for t in threads]
            [t.join() for t in threads]
            wall = time.perf_counter() - t0
            p99 = max(r["p99_s"] for r in out.values())
            print(f"  two replicas, one Redis:  {args.lookups / wall:7.1f} lookups/s  p99 {p99 * 1000:.0f} ms"
                  f"  statuses {sorted({s for r in out.values() for s in r['statuses']})}")
        finally:
            for proc, _ in pair:
                proc.terminate()
                proc.wait()
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
