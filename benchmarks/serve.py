"""A threat service for benchmarks: one searcher on /cts/bench that blocks like an HTTP API call.

    python benchmarks/serve.py --workers 128 --sleep 0.1 [--port 0]
        [--option key=value]...            (more [custom_threat_service] options)
        [--service-option instant:rate_limit=10/second]...  ([custom_threat_service.<service>])
        [--api URL --providers 9]          (/cts/providers: searchers calling URL/p1 ... URL/p9)

Prints ``URL <base url>`` on stdout once it listens.
"""
import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuits import BaseComponent, handler  # noqa: E402

from rc_cts import Hit, StringProp, searcher_channel  # noqa: E402
from rc_cts.runner import build  # noqa: E402


class BlockingSearcher(BaseComponent):
    """Sleeps as a searcher calling a remote API with ``requests`` would, then finds a hit."""
    channel = searcher_channel("bench")
    delay = 0.1

    @handler()
    def lookup(self, event, *args, **kwargs):
        time.sleep(self.delay)
        return Hit(StringProp(name="Value", value=str(event.artifact["value"])))


class InstantSearcher(BaseComponent):
    """/cts/instant: answers at once (the framework's own cost per lookup)."""
    channel = searcher_channel("instant")

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        return Hit(StringProp(name="Value", value=str(event.artifact["value"])))


class InlineSearcher(InstantSearcher):
    """/cts/inline: the same, declared non-blocking (``blocking = False``): no thread hop."""
    channel = searcher_channel("inline")
    blocking = False


class AsyncSearcher(BaseComponent):
    """/cts/async: an ``async def`` handler awaiting 100 ms, as an httpx call would."""
    channel = searcher_channel("async")
    max_concurrency = 1024

    @handler("net.ip")
    async def lookup(self, event, *args, **kwargs):
        await asyncio.sleep(0.1)
        return Hit(StringProp(name="Value", value=str(event.artifact["value"])))


class SlowSearcher(BaseComponent):
    """/cts/slow: blocks for 3 s (an API having a bad day), with its default limits."""
    channel = searcher_channel("slow")

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        time.sleep(3)
        return Hit(StringProp(name="Value", value=str(event.artifact["value"])))


class UploadSearcher(BaseComponent):
    """Declares it analyses files; answers with what the framework measured while streaming."""
    channel = searcher_channel("upload")
    upload_file = True

    @handler("file.content")
    def lookup(self, event, *args, **kwargs):
        return Hit(StringProp(name="SHA256", value=event.file.sha256), StringProp(name="Size", value=str(event.file.size)))


class ProviderSearcher(BaseComponent):
    """/cts/providers (with ``--api``): GETs its own path of a provider API with python-requests,
    as a searcher calling a remote API does; a 5xx is a failure, a 200 a hit."""
    channel = searcher_channel("providers")
    path = "/p1"

    def __init__(self, url: str):
        super().__init__()
        self.url = url  # part of its answers' cache key, as a real searcher's base URL is

    @handler("net.ip")
    def lookup(self, event, *args, **kwargs):
        import requests
        response = requests.get(self.url + self.path, params={"value": event.artifact["value"]}, timeout=10)
        response.raise_for_status()
        return Hit(StringProp(name="Provider", value=self.path.lstrip("/")),
                   StringProp(name="Verdict", value=str(response.json().get("verdict"))))


def providers(url: str, count: int):
    """``count`` searchers on /cts/providers, Provider1 calling <url>/p1 and so on."""
    return [type(f"Provider{i}", (ProviderSearcher,), {"path": f"/p{i}"})(url) for i in range(1, count + 1)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=128)
    ap.add_argument("--sleep", type=float, default=0.1)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log-level", default="WARNING")
    ap.add_argument("--option", action="append", default=[], help="extra key=value for [custom_threat_service]")
    ap.add_argument("--service-option", action="append", default=[], metavar="SERVICE:KEY=VALUE",
                    help="a limit for one service's searchers, in [custom_threat_service.<SERVICE>]")
    ap.add_argument("--prefill", type=int, default=0, help="store this many complete results first")
    ap.add_argument("--api", help="also serve /cts/providers, its searchers calling this provider API")
    ap.add_argument("--providers", type=int, default=9, help="how many searchers /cts/providers has")
    args = ap.parse_args()
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    BlockingSearcher.delay = args.sleep
    cts = {"workers": str(args.workers)}
    cts.update(kv.split("=", 1) for kv in args.option)
    opts = {"webserver": {"server": "127.0.0.1", "port": str(args.port)}, "custom_threat_service": cts}
    for text in args.service_option:
        name, _, kv = text.partition(":")
        key, _, value = kv.partition("=")
        opts.setdefault(f"custom_threat_service.{name}", {})[key] = value
    searchers = [BlockingSearcher(), UploadSearcher(), InstantSearcher(), InlineSearcher(), AsyncSearcher(),
                 SlowSearcher()]
    if args.api:
        searchers += providers(args.api, args.providers)
    root, service, _ = build(opts, searchers)
    if args.prefill:
        from prefill import prefill
        prefill(service.store, args.prefill)
    print("URL", service.url, flush=True)
    root.run()


if __name__ == "__main__":
    main()
