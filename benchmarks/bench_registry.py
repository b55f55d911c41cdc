"""The searcher registry's three goals, each measured in one run against its reference, with
the asyncio load client and the minimal aiohttp service from ../shared/bench:

    python benchmarks/bench_registry.py isolation  # (a) a quick service while a slow one is saturated
    python benchmarks/bench_registry.py async      # (b) an async 100 ms searcher, 512 clients
    python benchmarks/bench_registry.py instant    # (c) instant lookups/s, 64 clients
    python benchmarks/bench_registry.py all

Needs aiohttp for the floor (pip install 'rc-cts[bench]').
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

from bench_lookups import SHARED, rss_mb, start_service

BENCH = SHARED / "bench"


def aload(url, n, conc, pid=None) -> dict:
    cmd = [sys.executable, str(BENCH / "aload.py"), url, "--n", str(n), "--conc", str(conc)]
    if pid is not None:
        cmd += ["--pid", str(pid)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def floor(port=8099):
    proc = subprocess.Popen([sys.executable, str(BENCH / "floor_aiohttp.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/cts/bench"
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            aload(url, 8, 2)
            return proc, url
        except subprocess.CalledProcessError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the aiohttp floor did not start (pip install aiohttp)")


def line(name, r, ref=None) -> str:
    text = (f"{name:<22} {r['lookups_per_s']:8.0f} lookups/s  p50 {r['p50_s'] * 1000:7.1f} ms"
            f"  p99 {r['p99_s'] * 1000:7.1f} ms  statuses {r['statuses']}")
    if r.get("max_threads"):
        text += f"  threads {r['max_threads']}"
    if ref:
        text += f"  = {r['lookups_per_s'] / ref['lookups_per_s']:.2f}x the floor"
    return text


def isolation(args) -> None:
    """(a): p50 of /cts/instant, idle and while /cts/slow (3 s calls) has 4x its 32 calls in flight."""
    proc, url = start_service(128, 0.1, "WARNING", ["sync_wait_secs=0.5"])
    try:
        aload(url + "/instant", 200, 8)
        idle = aload(url + "/instant", args.n, 8)
        stop = threading.Event()

        def saturate():
            while not stop.is_set():  # keep 128 slow lookups in flight: 4x its concurrency of 32
                aload(url + "/slow", 128, 128)

        loader = threading.Thread(target=saturate, daemon=True)
        loader.start()
        time.sleep(2)
        busy = aload(url + "/instant", args.n, 8)
        stop.set()
        print("(a) a quick service while a 3 s service holds 4x its concurrency (128 in flight)")
        print(line("  idle", idle))
        print(line("  slow one saturated", busy))
        print(f"  p50 while saturated: {busy['p50_s'] * 1000:.1f} ms (target < 50 ms), "
              f"{busy['p50_s'] / idle['p50_s']:.2f}x the idle p50")
    finally:
        proc.terminate()
        proc.wait()


def async_searcher(args) -> None:
    """(b): /cts/async (awaits 100 ms) at 512 clients, against the floor at 512 clients."""
    fproc, furl = floor()
    proc, url = start_service(128, 0.1, "WARNING", ["sync_wait_secs=5"])
    try:
        ref = aload(furl, args.n, 512)
        aload(url + "/async", 1000, 512)
        r = aload(url + "/async", args.n * 2, 512, pid=proc.pid)
        print("(b) an async searcher awaiting 100 ms, 512 concurrent clients")
        print(line("  aiohttp floor", ref))
        print(line("  rc-cts /cts/async", r, ref))
        print(f"  target >= 1,500 lookups/s with < 50 threads; resident {rss_mb(proc.pid):.0f} MB")
    finally:
        proc.terminate()
        fproc.terminate()
        proc.wait()
        fproc.wait()


def instant(args) -> None:
    """(c): /cts/instant at 64 clients, against the floor at 64 clients."""
    fproc, furl = floor()
    proc, url = start_service(128, 0.1, "INFO", [])
    try:
        aload(furl, 1000, 64)
        ref = aload(furl, args.n, 64)
        aload(url + "/instant", 1000, 64)
        r = aload(url + "/instant", args.n, 64, pid=proc.pid)
        aload(url + "/inline", 1000, 64)
        inline = aload(url + "/inline", args.n, 64, pid=proc.pid)
        print("(c) instant-searcher lookups, 64 concurrent clients (INFO logging, one line per request)")
        print(line("  aiohttp floor", ref))
        print(line("  rc-cts /cts/instant", r, ref))
        print(line("  blocking = False", inline, ref))
        print("  target >= 3,000 lookups/s")
    finally:
        proc.terminate()
        fproc.terminate()
        proc.wait()
        fproc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["isolation", "async", "instant", "all"])
    ap.add_argument("--n", type=int, default=6000)
    args = ap.parse_args()
    if not (BENCH / "aload.py").exists():
        raise SystemExit(f"aload.py not found in {BENCH} (set RC_CTS_SHARED)")
    print(f"{os.cpu_count()} cores; every rate next to its reference measured in the same run")
    for name, fn in (("isolation", isolation), ("async", async_searcher), ("instant", instant)):
        if args.which in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()
