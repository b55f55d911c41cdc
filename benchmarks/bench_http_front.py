"""The HTTP front under a flood, against a service in its own process:

    python benchmarks/bench_http_front.py idle      # idle sockets held while a good client's p99 < 100 ms
    python benchmarks/bench_http_front.py inflight  # resident memory while 200 clients dribble 5 MB bodies
    python benchmarks/bench_http_front.py all

``idle`` opens more and more idle sockets (and, at the limit, slowloris ones) and measures a good
client's lookups with the asyncio load client from ../shared/bench, next to the aiohttp floor
holding the same sockets.  Needs aiohttp for the floor (pip install 'rc-cts[bench]').
"""
import argparse
import os
import socket
import time

from bench_lookups import rss_mb, start_service
from bench_registry import aload, floor

STEPS = (0, 1000, 2000, 4000, 8000)


def hold(addr, n):
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(addr, timeout=5))
        except OSError:
            break
    return socks


def idle(args) -> None:
    proc, url = start_service(128, 0.1, "WARNING", ["max_connections=20000"])
    fproc, furl = floor(8098)
    host, port = url.split("//")[1].split("/")[0].split(":")
    fhost, fport = furl.split("//")[1].split("/")[0].split(":")
    held, fheld = [], []
    print("idle sockets held, and a good client's lookups (8 connections of its own)")
    try:
        for step in STEPS:
            held += hold((host, int(port)), step - len(held))
            fheld += hold((fhost, int(fport)), step - len(fheld))
            time.sleep(1)
            ref = aload(furl, args.n, 8)
            r = aload(url + "/instant", args.n, 8)
            print(f"  {len(held):5d} idle: rc-cts p50 {r['p50_s'] * 1000:5.1f} ms  p99 {r['p99_s'] * 1000:6.1f} ms"
                  f"  {r['lookups_per_s']:6.0f}/s   aiohttp floor p99 {ref['p99_s'] * 1000:6.1f} ms"
                  f"  {ref['lookups_per_s']:6.0f}/s   rc-cts resident {rss_mb(proc.pid):.0f} MB")
        limit = 2000
        proc.terminate()
        proc.wait()
        for s in held:
            s.close()
        proc, url = start_service(128, 0.1, "WARNING", [f"max_connections={limit}"])
        host, port = url.split("//")[1].split("/")[0].split(":")
        flood = hold((host, int(port)), limit + 2000)
        for s in flood:
            try:
                s.sendall(b"POST /cts/instant HTTP/1.1\r\nHost: x\r\n")  # slowloris heads
            except OSError:
                pass
        time.sleep(1)
        r = aload(url + "/instant", args.n, 8)
        print(f"  max_connections={limit}, {len(flood)} slowloris sockets opened: good client p99 "
              f"{r['p99_s'] * 1000:.1f} ms, {r['lookups_per_s']:.0f}/s, statuses {r['statuses']}")
        for s in flood:
            s.close()
    finally:
        for s in held + fheld:
            s.close()
        proc.terminate()
        fproc.terminate()
        proc.wait()
        fproc.wait()


def inflight(args) -> None:
    proc, url = start_service(128, 0.1, "WARNING", ["max_body_mb=6", "max_buffered_mb=64"])
    host, port = url.split("//")[1].split("/")[0].split(":")
    try:
        before = rss_mb(proc.pid)
        size = 5 * 1024 * 1024
        socks = hold((host, int(port)), 200)
        for s in socks:
            s.sendall(b"POST /cts/instant HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % size)
        chunk = b" " * (256 * 1024)
        peak = before
        sent = 0
        t0 = time.monotonic()
        for _ in range(size // len(chunk) - 1):
            for s in list(socks):
                try:
                    s.sendall(chunk)
                    sent += len(chunk)
                except OSError:
                    socks.remove(s)  # refused with 503 and closed
            peak = max(peak, rss_mb(proc.pid))
        print("200 clients each dribbling a 5 MB JSON body (max_buffered_mb = 64)")
        print(f"  resident before {before:.0f} MB, peak {peak:.0f} MB: grew {peak - before:.0f} MB "
              f"while {sent / 2 ** 20:.0f} MB were sent in {time.monotonic() - t0:.1f} s; "
              f"{len(socks)} of 200 connections still open")
        for s in socks:
            s.close()
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("which", choices=["idle", "inflight", "all"])
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores")
    for name, fn in (("idle", idle), ("inflight", inflight)):
        if args.which in (name, "all"):
            fn(args)


if __name__ == "__main__":
    main()
