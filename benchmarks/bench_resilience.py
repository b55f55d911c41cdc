"""What the resilience features cost and save, each measured in one run against its reference:

    python benchmarks/bench_resilience.py quota    # the cost the quota check adds per call
    python benchmarks/bench_resilience.py rescan   # a rescan after one provider's outage
    python benchmarks/bench_resilience.py all

quota: (a) microseconds per ``acquire()`` of LocalQuota and RedisQuota (a redis-server on a free
port, started and stopped here) with 1, 2 and 3 windows too large ever to refuse; (b) instant
lookups/s through the HTTP service (/cts/instant of serve.py, a new artifact each lookup) with no
rate_limit and with three big windows, on the memory store (LocalQuota) and on the redis store
(RedisQuota), each against the aiohttp floor measured in the same run, and the microseconds per
lookup the quota adds (the difference of 1/rate).

rescan: /cts/providers of serve.py, nine searchers each calling its own path of a fake provider
API (rc_cts.fakeapi, 100 ms a reply). A cold scan of 200 artifacts; one provider fails (500)
while 50 new artifacts are scanned; it recovers, the breaker's cool-down passes, and the 50 are
scanned again: the API calls of each phase and their times. Each scan POSTs and polls as the
platform does (../shared/platform_sim.py).

Needs aiohttp for the floor (pip install 'rc-cts[bench]') and redis-server.
"""
import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis

from bench_lookups import SHARED, start_service
from bench_registry import BENCH, aload, floor, line

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(SHARED)]

from rc_cts.lookups.quota import LocalQuota, parse_rate_limit  # noqa: E402
from rc_cts.store.redis import RedisStore  # noqa: E402
from rc_cts.fakeapi import FakeApi  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402

BIG_WINDOWS = ["1000000/second", "10000000/hour", "100000000/day"]  # never refuse in a benchmark


# -- quota -------------------------------------------------------------------------------------
def without_fsync(server: RedisServer) -> RedisServer:
    """tests' redis-server fsyncs every write (the AOF it keeps for restarts): turned off, as the
    benchmark measures the quota, not the disk."""
    client = redis.Redis.from_url(server.url)
    client.config_set("appendonly", "no")
    client.close()
    return server


def time_acquires(quota, n: int) -> dict:
    """Mean µs per acquire() from a plain loop; p99 from a second loop timing each call."""
    for _ in range(min(n, 1000)):  # warm up: connection, script load
        quota.acquire()
    acquire = quota.acquire
    t0 = time.perf_counter()
    for _ in range(n):
        acquire()
    mean = (time.perf_counter() - t0) / n * 1e6
    each, refused = [], 0
    for _ in range(n):
        t = time.perf_counter_ns()
        refused += acquire() > 0
        each.append(time.perf_counter_ns() - t)
    each.sort()
    if refused:
        raise SystemExit(f"{type(quota).__name__} refused {refused} calls: the windows are too small")
    return {"mean": mean, "p99": each[int(0.99 * len(each))] / 1000}


def ping_us(url: str, n: int = 2000) -> float:
    """µs per Redis PING: the round trip every RedisQuota call pays at least."""
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            client.ping()
        t0 = time.perf_counter()
        for _ in range(n):
            client.ping()
        return (time.perf_counter() - t0) / n * 1e6
    finally:
        client.close()


def quota_micro(args, redis_url: str) -> None:
    store = RedisStore(redis_url, prefix=f"bench-{uuid.uuid4().hex[:8]}:")
    try:
        print("(a) µs per quota.acquire(), windows that never refuse "
              f"(LocalQuota {args.local_calls} calls, RedisQuota {args.redis_calls} calls)")
        print(f"  {'windows':<44} {'Local mean':>10} {'p99':>7}  {'Redis mean':>10} {'p99':>7}  Redis/Local")
        for count in (1, 2, 3):
            text = ", ".join(BIG_WINDOWS[:count])
            windows = parse_rate_limit(text)
            local = time_acquires(LocalQuota(windows), args.local_calls)
            remote = time_acquires(store.make_quota(f"micro{count}", windows), args.redis_calls)
            print(f"  {text:<44} {local['mean']:10.2f} {local['p99']:7.2f}  {remote['mean']:10.1f} "
                  f"{remote['p99']:7.1f}  {remote['mean'] / local['mean']:8.0f}x")
        print(f"  reference: a Redis PING round trip (redis-py, 127.0.0.1) takes {ping_us(redis_url):.1f} µs here")
        client = redis.Redis.from_url(redis_url)
        key = next(client.scan_iter(f"{store.prefix}quota:micro3:100000000/*"))
        print(f"  a sliding log keeps each call for its window: the day window's sorted set now holds "
              f"{client.zcard(key)} calls in {client.memory_usage(key) / 1e6:.1f} MB "
              f"({client.memory_usage(key) / client.zcard(key):.0f} bytes per call)")
        client.close()
    finally:
        store.close()


def redis_commands(url: str) -> int:
    """Commands Redis has run (those a Lua script runs counted too)."""
    client = redis.Redis.from_url(url)
    try:
        return int(client.info("stats")["total_commands_processed"])
    finally:
        client.close()


ADMIN_TOKEN = "bench-admin"


def clear_answers(url: str) -> None:
    """DELETE /admin/cache: aload picks its artifacts' second octet at random, so a run may repeat
    an earlier run's values; with no answer cached, each of its lookups still calls the searcher."""
    request = urllib.request.Request(url.rsplit("/cts", 1)[0] + "/admin/cache", method="DELETE",
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        reply.read()


def spread(runs) -> float:
    """How far apart a target's rounds are: (best - worst) / best."""
    rates = [r["lookups_per_s"] for r in runs]
    return (max(rates) - min(rates)) / max(rates)


def quota_end_to_end(args, redis_url: str) -> None:
    """Every service and the floor run at once (idle but for the one loaded); rounds alternate
    between them, each run lasting about ``args.seconds``, and the best rate of each is kept,
    so that the machine's drift hits all alike; the spread of the rounds shows the noise."""
    rate_limit = ", ".join(BIG_WINDOWS)
    redis_opts = ["store=redis", f"redis_url={redis_url}"]
    quota_opt = ["--service-option", f"instant:rate_limit={rate_limit}"]
    configs = [  # name, options, extra serve.py arguments
        ("memory, no rate_limit", [], []),
        ("memory, LocalQuota", [], quota_opt),
        ("redis, no rate_limit", redis_opts + ["redis_prefix=bench-a:"], []),
        ("redis, RedisQuota", redis_opts + ["redis_prefix=bench-b:"], quota_opt),
    ]
    fproc, furl = floor()
    procs = [fproc]
    try:
        targets = [("aiohttp floor", fproc, furl, False)]
        for name, options, extra in configs:
            proc, url = start_service(128, 0.1, "WARNING", options + [f"admin_token={ADMIN_TOKEN}"], extra)
            procs.append(proc)
            targets.append((name, proc, url + "/instant", name.startswith("redis")))
        results = {}
        for conc in (args.conc, 1):
            sizes = {}
            for name, proc, url, _ in targets:  # warm up, and size each run to last args.seconds
                r = aload(url, 1000 if conc > 1 else 200, conc)
                sizes[name] = max(200, int(r["lookups_per_s"] * args.seconds))
            runs = {name: [] for name, *_ in targets}
            for _ in range(args.rounds):
                for name, proc, url, on_redis in targets:
                    if name != "aiohttp floor":
                        clear_answers(url)
                    before = redis_commands(redis_url) if on_redis else 0
                    r = aload(url, sizes[name], conc, pid=proc.pid if name != "aiohttp floor" else None)
                    if on_redis:
                        r["redis_commands"] = (redis_commands(redis_url) - before) / sizes[name]
                    runs[name].append(r)
            results[conc] = runs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
    print(f"(b) instant lookups through HTTP (/cts/instant, a new artifact each lookup); best of "
          f"{args.rounds} alternating rounds of about {args.seconds:g} s each; rate_limit = {rate_limit}")
    for conc, runs in results.items():
        best = {name: max(rs, key=lambda r: r["lookups_per_s"]) for name, rs in runs.items()}
        ref = best["aiohttp floor"]
        print(f"  {conc} client{'s' if conc > 1 else ''}:")
        for name, rs in runs.items():
            text = line(f"    {name:<24}", best[name], None if name == "aiohttp floor" else ref)
            text += f"  (rounds spread {spread(rs) * 100:.0f}%)"
            if "redis_commands" in best[name]:
                text += f"  {best[name]['redis_commands']:.1f} Redis commands/lookup"
            print(text)

        def cost(with_quota: str, without: str) -> str:
            us = 1e6 / best[with_quota]["lookups_per_s"] - 1e6 / best[without]["lookups_per_s"]
            noise = min(spread(runs[with_quota]), spread(runs[without])) * 1e6 / best[without]["lookups_per_s"]
            return (f"{us:+8.1f} µs per lookup ({us / (1e6 / ref['lookups_per_s']):+.2f} floor lookups)"
                    + ("" if abs(us) > noise else f", within the rounds' noise of ±{noise:.0f} µs"))
        print(f"    the quota adds, memory store (LocalQuota): {cost('memory, LocalQuota', 'memory, no rate_limit')}")
        print(f"    the quota adds, redis store (RedisQuota):  {cost('redis, RedisQuota', 'redis, no rate_limit')}")
        print(f"    the redis store adds (no quota):          {cost('redis, no rate_limit', 'memory, no rate_limit')}")


def quota(args) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        server = RedisServer(Path(directory))
        try:
            without_fsync(server.start())
            quota_micro(args, server.url)
            quota_end_to_end(args, server.url)
        finally:
            server.stop()


# -- rescan ------------------------------------------------------------------------------------
PROVIDERS = 9
API_DELAY = 0.1
BROKEN = f"/p{PROVIDERS}"  # the provider that fails for a while
# The platform's polls, and the breaker, shortened so that the benchmark takes seconds.
RESCAN_OPTIONS = ["first_retry_secs=0.5", "later_retry_secs=0.5", "incomplete_retry_secs=0.5",
                  "max_retries=3"]
RESCAN_LIMITS = ["cache_ttl_secs=86400", "breaker_cooldown_secs=1", "breaker_max_cooldown_secs=2"]


def scan(url: str, values, conc: int) -> dict:
    """POST each artifact and poll its 303s as the platform does; how each lookup ended."""
    import platform_sim
    local = threading.local()

    def one(value):
        if not hasattr(local, "conn"):
            local.conn = platform_sim.Conn(url)
        status, body, polls, elapsed = platform_sim.lookup(local.conn, {"type": "net.ip", "value": value})
        hits = len(body.get("hits", [])) if isinstance(body, dict) else 0
        return status, hits, polls, elapsed

    t0 = time.perf_counter()
    with ThreadPoolExecutor(conc) as pool:
        ended = list(pool.map(one, values))
    wall = time.perf_counter() - t0
    return {"n": len(values), "wall": wall, "p50": statistics.median(e for *_, e in ended),
            "polls": sum(p for _, _, p, _ in ended), "statuses": sorted({s for s, *_ in ended}),
            "at_once": sum(1 for s, _, polls, _ in ended if s == 200 and polls == 0),
            "whole": sum(1 for s, hits, _, _ in ended if s == 200 and hits == PROVIDERS),
            "hits": sorted({hits for _, hits, _, _ in ended})}


def counted(api: FakeApi, base: str, since) -> dict:
    """API calls since ``since`` (a mark()): the broken provider's, every other's, and the
    calls to it its breaker refused."""
    calls = api.calls()[since[0]:]
    broken = sum(1 for c in calls if c.path == BROKEN)
    return {"all": len(calls), "broken": broken, "others": len(calls) - broken,
            "skipped": skipped(base) - since[1]}


def breaker(base: str) -> dict:
    """The broken provider's breaker, from /readyz."""
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as reply:
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, with the same body
        body = json.loads(exc.read())
    return body["breakers"]["providers"][f"Provider{PROVIDERS}"]


def skipped(base: str) -> int:
    """Calls of the broken provider's searcher its breaker refused, from /metrics."""
    with urllib.request.urlopen(base + "/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.search(r'^rc_cts_searcher_breaker_skipped_total\{[^}]*searcher="Provider%d"[^}]*\} (\S+)$'
                      % PROVIDERS, text, re.M)
    return int(float(found.group(1))) if found else -1


def report(name: str, r: dict, calls: dict, per: int) -> None:
    print(f"  {name:<28} {r['n']:4d} artifacts in {r['wall']:6.2f} s = {r['wall'] / r['n'] * 1000:6.1f} ms each "
          f"(p50 lookup {r['p50'] * 1000:4.0f} ms), {r['at_once']} answered on the POST, {r['polls']} polls, "
          f"whole {r['whole']}/{r['n']}, "
          f"statuses {r['statuses']}, hits per answer {r['hits']}")
    print(f"  {'':<28} API calls {calls['all']} = {calls['all'] / r['n']:.2f} per artifact "
          f"(expected {per}): {calls['others']} to the 8 others, {calls['broken']} to {BROKEN}; "
          f"its breaker refused {calls['skipped']} calls")


def rescan(args) -> None:
    api = FakeApi().start()
    for i in range(1, PROVIDERS + 1):
        api.answer(f"/p{i}", 200, {"verdict": "listed"}, delay=API_DELAY)
    limits = [arg for limit in RESCAN_LIMITS for arg in ("--service-option", f"providers:{limit}")]
    proc = None
    try:
        proc, url = start_service(128, 0.1, "WARNING", RESCAN_OPTIONS,
                                  ["--api", api.url, "--providers", str(PROVIDERS), *limits])
        base, url = url.rsplit("/cts", 1)[0], url + "/providers"
        scan(url, ["10.255.0.1"], 1)  # warm up
        print(f"rescan: {PROVIDERS} searchers on /cts/providers, each calling its own path of a fake API "
              f"({API_DELAY * 1000:.0f} ms a reply), {args.scan_conc} platform clients; "
              f"{', '.join(RESCAN_OPTIONS + RESCAN_LIMITS)}")

        def mark():
            return len(api.calls()), skipped(base)

        since = mark()
        cold = scan(url, [f"10.1.{i >> 8}.{i & 255}" for i in range(args.cold)], args.scan_conc)
        cold_calls = counted(api, base, since)
        report("cold scan", cold, cold_calls, PROVIDERS)

        api.answer(BROKEN, 500, {"error": "down"}, delay=API_DELAY)
        outage_values = [f"10.2.{i >> 8}.{i & 255}" for i in range(args.outage)]
        since = mark()
        outage = scan(url, outage_values, args.scan_conc)
        report(f"{BROKEN} down (500)", outage, counted(api, base, since), PROVIDERS)
        state = breaker(base)
        print(f"  {'':<28} its breaker: {state['state']}, {state['trips']} trips"
              + (f", probe in {state['probe_in_secs']} s" if "probe_in_secs" in state else ""))

        api.reset(BROKEN)
        api.answer(BROKEN, 200, {"verdict": "listed"}, delay=API_DELAY)
        wait = state.get("probe_in_secs", 0) + 0.2
        time.sleep(wait)
        since = mark()
        again = scan(url, outage_values, args.scan_conc)
        again_calls = counted(api, base, since)
        report(f"{BROKEN} back, rescan", again, again_calls, 1)
        state = breaker(base)
        print(f"  {'':<28} waited {wait:.1f} s for the cool-down first; its breaker now: {state['state']}, "
              f"{state['trips']} trips")
        since = mark()
        third = scan(url, outage_values, args.scan_conc)
        report(f"the same {args.outage} once more", third, counted(api, base, since), 0)
        per_artifact = (again["wall"] / again["n"]) / (cold["wall"] / cold["n"])
        print(f"  the rescan: {again_calls['all'] / again['n']:.2f} API calls per artifact against the cold "
              f"scan's {cold_calls['all'] / cold['n']:.2f}; {again['wall'] / again['n'] * 1000:.1f} ms of wall time "
              f"per artifact against {cold['wall'] / cold['n'] * 1000:.1f} ms ({per_artifact:.2f}x), p50 lookup "
              f"{again['p50'] * 1000:.0f} ms against {cold['p50'] * 1000:.0f} ms ({again['p50'] / cold['p50']:.2f}x); "
              f"{again['n'] - again['at_once']} of its lookups were not answered on the POST")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        api.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["quota", "rescan", "all"])
    ap.add_argument("--seconds", type=float, default=1.2, help="length of each aload run (quota b)")
    ap.add_argument("--conc", type=int, default=64, help="aload clients (quota b; then 1 client)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (quota b)")
    ap.add_argument("--local-calls", type=int, default=100000)
    ap.add_argument("--redis-calls", type=int, default=5000)
    ap.add_argument("--cold", type=int, default=200, help="artifacts of the cold scan (rescan)")
    ap.add_argument("--outage", type=int, default=50, help="artifacts scanned during the outage (rescan)")
    ap.add_argument("--scan-conc", type=int, default=16, help="platform clients (rescan)")
    args = ap.parse_args()
    if not (BENCH / "aload.py").exists() or not (SHARED / "platform_sim.py").exists():
        raise SystemExit(f"aload.py or platform_sim.py not found in {SHARED} (set RC_CTS_SHARED)")
    print(f"{os.cpu_count()} cores; every rate next to its reference measured in the same run")
    t0 = time.perf_counter()
    for name, fn in (("quota", quota), ("rescan", rescan)):
        if args.which in (name, "all"):
            fn(args)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
