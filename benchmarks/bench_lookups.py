"""Lookups/s with a searcher that blocks 100 ms, and cached POSTs/s, measured with the
platform simulator from ../shared, against a service in its own process.

    python benchmarks/bench_lookups.py [--n 3000] [--conc 64] [--workers 128] [--seconds 5]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("RC_CTS_SHARED", HERE.parents[1] / "shared"))


def start_service(workers: int, sleep: float, log_level: str = "INFO", options=(), extra_args=()):
    """The service in its own process, logging (to a temporary file) as in production."""
    cmd = [sys.executable, str(HERE / "serve.py"), "--workers", str(workers), "--sleep", str(sleep),
           "--log-level", log_level, *extra_args]
    for opt in options:
        cmd += ["--option", opt]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    line = proc.stdout.readline().split()
    if not line or line[0] != "URL":
        proc.kill()
        raise SystemExit("the benchmark service did not start")
    return proc, line[1]


def sim(*args) -> dict:
    out = subprocess.run([sys.executable, str(SHARED / "platform_sim.py"), *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--conc", type=int, default=64)
    ap.add_argument("--workers", type=int, default=128)
    ap.add_argument("--sleep", type=float, default=0.1)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--log-level", default="INFO", help="the service's log level (INFO logs each request)")
    args = ap.parse_args()
    if not (SHARED / "platform_sim.py").exists():
        raise SystemExit(f"platform_sim.py not found in {SHARED} (set RC_CTS_SHARED)")
    proc, url = start_service(args.workers, args.sleep, args.log_level)
    try:
        sim("bench", url + "/bench", "--n", "64", "--conc", "16")  # warm up
        lookups = sim("bench", url + "/bench", "--n", str(args.n), "--conc", str(args.conc))
        cached = sim("hammer", url + "/bench", "--seconds", str(args.seconds), "--conc", "16")
        print(f"service: {url} workers={args.workers} searcher blocks {args.sleep * 1000:.0f} ms,"
              f" log level {args.log_level}")
        print(f"lookups:  {lookups['lookups_per_s']:8.1f} lookups/s  p50 {lookups['p50_s'] * 1000:.0f} ms"
              f"  p99 {lookups['p99_s'] * 1000:.0f} ms  ({lookups['n']} lookups, conc {args.conc},"
              f" {lookups['ok_with_hits']} with hits, polls {lookups['polls']}, statuses {lookups['statuses']})")
        print(f"cached:   {cached['req_per_s']:8.1f} POSTs/s    p50 {cached['p50_ms']:.2f} ms"
              f"  p99 {cached['p99_ms']:.2f} ms  (conc 16, errors {cached['errors']})")
        print(f"memory:   {rss_mb(proc.pid):8.1f} MB resident")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
