"""``rc-cts``: run the threat service standalone, and the tools for searcher authors."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from .. import install_check
from ..version import __version__  # not from rc_cts: IBM's __init__ (see install_check) has none
from ..config.settings import ConfigError, find_config_file, read_config_file, settings_from_opts
from ..hits import service_of
from ..store import StoreError

LOG = logging.getLogger("rc_cts")
LOG_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"


def _load_opts(path: Optional[str]):
    config_file = find_config_file(path)
    if config_file is None:
        LOG.info("no config file: running on the embedded defaults")
        return {}
    LOG.info("config file: %s", config_file)
    return read_config_file(config_file)


def cmd_run(args: argparse.Namespace) -> int:
    from ..runner import build  # imported late: --help stays fast
    opts = _load_opts(args.config)
    settings_from_opts(opts)  # fail early, with the option's name, on a bad value
    root, _, _ = build(opts)
    root.run()
    return 0


def cmd_searchers(args: argparse.Namespace) -> int:
    from .. import plugins
    found, errors = plugins.discover()
    rows = [(sc.service, ", ".join(sc.artifact_types()).replace("*", "every type") or "-",
             f"{sc.cls.__module__}:{sc.cls.__name__}", f"{sc.distribution} {sc.version}".strip())
            for sc in found]
    if rows:
        _table(["SERVICE", "ARTIFACT TYPES", "SEARCHER", "PACKAGE"], rows)
    else:
        print("no searcher packages are installed")
    if errors:
        print("\nnot loaded:")
        for error in errors:
            print(f"  {error}")
    return 1 if errors else 0


def _table(header: List[str], rows: List[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def cmd_lookup(args: argparse.Namespace) -> int:
    from .client import Client
    value = json.loads(args.value) if args.value_json else args.value
    artifact = {"type": args.type, "value": value}
    file_bytes = Path(args.file).read_bytes() if args.file else None
    running = None
    if args.url:
        targets = [(Client(args.url, args.user, args.password), "", args.url)]
    else:
        from ..runner import start_in_thread
        opts = _load_opts(args.config)
        opts.setdefault("webserver", {}).update({"server": "127.0.0.1", "port": "0", "secure": "false"})
        # a throw-away store: never write to, or take lookups over from, a running service's store
        opts.setdefault("custom_threat_service", {})["store"] = "memory"
        settings = settings_from_opts(opts)
        running = start_in_thread(opts)
        services = sorted(service_of(ch) for ch in running.service.dispatcher.registry.channels())
        if args.service:
            services = [s for s in services if s == args.service] or [args.service]
        client = running.client(user=settings.auth_user, password=settings.auth_password) \
            if settings.auth_enabled else running.client()
        targets = [(client, s, f"{running.url}/{s}") for s in services]
        if not targets:
            print("no searchers are installed", file=sys.stderr)
    ok = True
    results = []
    try:
        for client, service, url in targets:
            t0 = time.perf_counter()
            try:
                response, polls = client.lookup(service, artifact, file_bytes, poll_secs=None)
            except OSError as exc:
                print(f"{url}: cannot connect: {exc}", file=sys.stderr)
                ok = False
                continue
            elapsed = time.perf_counter() - t0
            try:
                body = response.json
            except ValueError:
                body = response.raw.decode("utf-8", "replace")
            ok &= response.status == 200
            results.append({"service": url, "status": response.status, "polls": polls,
                            "elapsed_s": round(elapsed, 3), "body": body})
    finally:
        if running is not None:
            running.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            _print_result(result)
    return 0 if ok and targets else 1


def _print_result(result: dict) -> None:
    body = result["body"]
    hits = body.get("hits", []) if isinstance(body, dict) else []
    head = f"{result['service']}: {result['status']}"
    if isinstance(body, dict) and "error" in body:
        print(f"{head} error: {body['error']}")
        return
    print(f"{head}, {len(hits)} hit{'s' if len(hits) != 1 else ''} ({result['elapsed_s']} s)")
    for n, hit in enumerate(hits, 1):
        print(f"  hit {n}")
        props = hit.get("props", [])
        width = max((len(str(p.get("name"))) for p in props), default=0)
        for p in props:
            value = p.get("value")
            if p.get("type") == "latlng" and isinstance(value, dict):
                value = f"{value.get('lat')}, {value.get('lng')}"
            print(f"    {str(p.get('name')).ljust(width)}  {value}  ({p.get('type')})")


def cmd_new_searcher(args: argparse.Namespace) -> int:
    from .scaffold import instructions, write_package
    try:
        root = write_package(args.name, Path(args.dir), args.type)
    except (ValueError, FileExistsError) as exc:
        print(f"rc-cts new-searcher: {exc}", file=sys.stderr)
        return 2
    print(instructions(root, args.type))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="rc-cts", description="Custom Threat Services for IBM SOAR")
    parser.add_argument("--version", action="version", version=f"rc-cts {__version__}")
    parser.add_argument("--log-level", default=None,
                        help="DEBUG, INFO, WARNING or ERROR (default: INFO for run, WARNING otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = ("app.config file (default: $APP_CONFIG_FILE, else ~/.resilient/app.config, "
                   "else embedded defaults)")

    run = sub.add_parser("run", help="run the threat service with the installed searchers")
    run.add_argument("-c", "--config", help=config_help)
    run.set_defaults(func=cmd_run, default_level="INFO")

    searchers = sub.add_parser("searchers", help="list installed searchers, their services and artifact types")
    searchers.set_defaults(func=cmd_searchers, default_level="WARNING")

    lookup = sub.add_parser("lookup", help="look up one artifact as the platform would, and show the hits")
    lookup.add_argument("type", help="artifact type, e.g. net.ip")
    lookup.add_argument("value", help="artifact value")
    lookup.add_argument("--url", help="a running service, e.g. http://host:9000/cts/example "
                                      "(default: run the installed searchers in this process)")
    lookup.add_argument("--service", help="without --url: only this service (default: every one)")
    lookup.add_argument("--file", help="upload this file with the artifact")
    lookup.add_argument("--value-json", action="store_true", help="the value is JSON (a number, an object...)")
    lookup.add_argument("--user", help="HTTP Basic user for --url")
    lookup.add_argument("--password", help="HTTP Basic password for --url")
    lookup.add_argument("--json", action="store_true", help="print the answers as JSON")
    lookup.add_argument("-c", "--config", help=config_help)
    lookup.set_defaults(func=cmd_lookup, default_level="WARNING")

    new = sub.add_parser("new-searcher", help="write a new searcher package skeleton")
    new.add_argument("name", help="package name, e.g. my_intel")
    new.add_argument("--dir", default=".", help="where to write it (default: here)")
    new.add_argument("--type", default="net.ip", help="the artifact type its handler answers")
    new.set_defaults(func=cmd_new_searcher, default_level="WARNING")

    args = parser.parse_args(argv)
    level = (args.log_level or args.default_level).upper()
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    install_check.report()  # IBM's rc_cts on the path: an ERROR line naming the fix
    try:
        return args.func(args)
    except ConfigError as exc:
        LOG.error("configuration error: %s", exc)
        return 2
    except (OSError, StoreError) as exc:
        LOG.error("cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
