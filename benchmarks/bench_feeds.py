"""The feed searcher with a million indicators: load time, memory, and time per lookup.

    python benchmarks/bench_feeds.py [--indicators 1000000] [--lookups 20000]
"""
import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "searchers_example"))

from searchers_example.feeds import FeedSearcher  # noqa: E402


def write_feed(path: Path, n: int, rnd: random.Random) -> dict:
    """A plain-list feed: 40% IPs, 10% CIDR ranges, 30% domains, 20% hashes."""
    samples = {"ip": [], "cidr_ip": [], "domain": [], "hash": []}
    with open(path, "w") as fh:
        for i in range(n):
            r = i % 10
            if r < 4:
                ip = f"{rnd.randrange(1, 224)}.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(256)}"
                fh.write(f"{ip} ; ip {i}\n")
                samples["ip"].append(ip)
            elif r == 4:
                prefix = rnd.choice((16, 20, 22, 24, 28))
                a, b, c = rnd.randrange(1, 224), rnd.randrange(256), rnd.randrange(256)
                fh.write(f"{a}.{b}.{c}.0/{prefix} ; net {i}\n")
                samples["cidr_ip"].append(f"{a}.{b}.{c}.1")
            elif r < 8:
                domain = f"host{i}-{rnd.randrange(10**6)}.example{i % 97}.test"
                fh.write(f"{domain}\n")
                samples["domain"].append(domain)
            else:
                digest = "%064x" % rnd.getrandbits(256)
                fh.write(f"{digest}\n")
                samples["hash"].append(digest)
    return samples


def timed(fn, values):
    out = []
    for v in values:
        t = time.perf_counter()
        fn(v)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--indicators", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=20_000)
    args = ap.parse_args()
    rnd = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "feed.txt"
        samples = write_feed(path, args.indicators, rnd)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        searcher = FeedSearcher({"feed_searcher": {"feed.bench": str(path), "reload_check_secs": "3600"}})
        load = time.perf_counter() - t0
        rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    n = args.lookups
    cases = {
        "net.ip (hit)": ("ip", rnd.sample(samples["ip"], min(n, len(samples["ip"])))),
        "net.ip (in a CIDR)": ("ip", rnd.sample(samples["cidr_ip"], min(n, len(samples["cidr_ip"])))),
        "net.ip (miss)": ("ip", [f"240.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)]),
        "net.name (parent)": ("domain", ["a.b." + d for d in rnd.sample(samples["domain"], min(n, len(samples["domain"])))]),
        "net.uri (host)": ("url", ["https://" + d + "/x" for d in rnd.sample(samples["domain"], min(n, len(samples["domain"])))]),
        "hash.sha256": ("hash", rnd.sample(samples["hash"], min(n, len(samples["hash"])))),
    }
    print(f"feed: {len(searcher.feeds.indicators):,} indicators loaded in {load:.1f} s, +{rss:.0f} MB resident")
    for label, (kind, values) in cases.items():
        lat = timed(lambda v, k=kind: searcher.feeds.matches(k, v), values)
        lat.sort()
        print(f"{label:20s} {len(values):6d} lookups  mean {statistics.mean(lat) * 1e6:6.1f} us"
              f"  p50 {lat[len(lat) // 2] * 1e6:6.1f} us  p99 {lat[int(len(lat) * 0.99)] * 1e6:6.1f} us")


if __name__ == "__main__":
    main()
