"""``rc-cts``: run the threat service standalone, check its configuration, and the tools for
searcher authors.  Every error is one line on stderr, never a traceback."""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple
from urllib.parse import urlsplit

from .. import install_check, logs
from ..version import __version__  # not from rc_cts: IBM's __init__ (see install_check) has none
from ..config.settings import (LOG_FORMATS, LOG_LEVELS, ConfigError, ConfigFile, Settings, collect_settings,
                               find_config_file, load_config_file, settings_from_opts, where)
from ..hits import service_of
from ..store import StoreError
from . import ops_cli
from .ops_cli import UsageError

LOG = logging.getLogger("rc_cts")
LOG_FORMAT = logs.PLAIN_FORMAT
CONFIG_HELP = ("app.config file (default: $APP_CONFIG_FILE, else ~/.resilient/app.config, "
               "else embedded defaults)")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as one line (no usage block): ``rc-cts run: error: ...``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level: {', '.join(LOG_LEVELS)}")
    return level


def _load_config(path: Optional[str]) -> Optional[ConfigFile]:
    config_file = find_config_file(path)
    if config_file is None:
        return None
    return load_config_file(config_file)


def _log_source(config: Optional[ConfigFile]) -> None:
    if config is None:
        LOG.info("no config file: running on the embedded defaults")
    else:
        LOG.info("config file: %s", config.path)


def _configure_run_logging(settings: Settings, override: Optional[str]) -> None:
    """``run``'s log, from ``[resilient]``: level (``--log-level`` wins), format, rotating file.
    A value that is not valid is reported by the checks; the default stands in for it here."""
    level = override or (settings.loglevel.upper() if settings.loglevel.upper() in LOG_LEVELS else "INFO")
    log_format = settings.log_format.lower() if settings.log_format.lower() in LOG_FORMATS else "plain"
    handlers = []
    path = logs.log_path(settings.logdir, settings.logfile)
    if path is not None:
        try:
            handlers.append(logs.file_handler(path, settings.log_max_bytes, settings.log_backup_count))
        except OSError as exc:
            logs.configure(level, log_format)
            option = "logdir" if settings.logdir else "logfile"
            raise OSError(exc.errno, f"{where(option)}: cannot open the log file {path!r}: "
                                     f"{exc.strerror or exc}") from None
    logs.configure(level, log_format, handlers)


def cmd_run(args: argparse.Namespace) -> int:
    from ..runner import build  # imported late: --help stays fast
    from .check import CONFIG, run_checks
    config = _load_config(args.config)
    opts = config.opts if config is not None else {}
    _configure_run_logging(collect_settings(opts)[0], args.log_level)
    _log_source(config)
    report = run_checks(config, allow_empty=args.allow_empty)
    for problem in report.warnings:
        LOG.warning("%s", logs.mask_secrets(problem.text))
    for problem in report.errors:
        LOG.error("%s: %s", "configuration error" if problem.exit_code == CONFIG else "cannot start",
                  logs.mask_secrets(problem.text))
    if report.errors:
        return report.exit_code
    root, _, _ = build(opts, report.searchers)
    root.run()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import run_checks, service_rows
    config = _load_config(args.config)
    _log_source(config)
    report = run_checks(config, allow_empty=args.allow_empty)
    print(f"config file: {config.path}" if config is not None else "no config file: the embedded defaults")
    rows = service_rows(report.classes)
    if rows:
        print("services:")
        _table(None, rows, indent="  ")
    for problem in report.problems:
        print(problem)
    errors, warnings = len(report.errors), len(report.warnings)
    print(f"{errors} error{'' if errors == 1 else 's'}, {warnings} warning{'' if warnings == 1 else 's'}")
    return report.exit_code


def cmd_searchers(args: argparse.Namespace) -> int:
    if args.url:
        return _ops(lambda: ops_cli.remote_searchers(args, _table))
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


def cmd_cache(args: argparse.Namespace) -> int:
    config = _load_config(args.config)
    return _ops(lambda: ops_cli.cache_clear(args, config))


def _ops(command: Callable[[], int]) -> int:
    """An operator command: a service it cannot reach is one line, not a traceback."""
    try:
        return command()
    except OSError as exc:  # the --url service: refused, unreachable, timed out
        print(f"cannot reach the service: {_error_text(exc) or exc}", file=sys.stderr)
        return 1


def _table(header: Optional[List[str]], rows: List[tuple], indent: str = "") -> None:
    lines = [header, *rows] if header else list(rows)
    widths = [max(len(str(r[i])) for r in lines) for i in range(len(lines[0]))]
    for row in lines:
        print(indent + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())


def _lookup_artifact(args: argparse.Namespace) -> Tuple[Dict[str, Any], Optional[bytes]]:
    """The artifact and file bytes the command line names; UsageError for unusable ones."""
    try:
        value = json.loads(args.value) if args.value_json else args.value
    except ValueError as exc:
        raise UsageError(f"--value-json: {args.value!r} is not JSON: {exc}") from None
    try:
        file_bytes = Path(args.file).read_bytes() if args.file else None
    except OSError as exc:
        raise UsageError(f"--file {args.file!r}: {exc.strerror or exc}") from None
    return {"type": args.type, "value": value}, file_bytes


def _checked_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--url {url!r} needs http:// or https:// and a host, "
                         "e.g. http://cts-host:9000/cts/example")
    return url


def cmd_lookup(args: argparse.Namespace) -> int:
    from .client import Client
    artifact, file_bytes = _lookup_artifact(args)
    running = None
    if args.url:
        targets = [(Client(_checked_url(args.url), args.user, args.password), "", args.url)]
        waiting_for: Callable[[str], List[str]] = lambda rid: []
    else:
        running, targets = _in_process_targets(args)
        waiting_for = _pending_searchers(running)
    ok = True
    results = []
    try:
        for client, service, url in targets:
            t0 = time.perf_counter()
            try:
                response, polls = client.lookup(service, artifact, file_bytes, poll_secs=None,
                                                on_poll=_progress(url, t0, waiting_for))
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


def _in_process_targets(args: argparse.Namespace) -> Tuple[Any, List[Tuple[Any, str, str]]]:
    """The installed searchers served in this process, on a free port, with a memory store."""
    from ..runner import start_in_thread
    config = _load_config(args.config)
    _log_source(config)
    opts = config.opts if config is not None else {}
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
    if not services:
        print("no searchers are installed", file=sys.stderr)
    return running, [(client, s, f"{running.url}/{s}") for s in services]


def _pending_searchers(running: Any) -> Callable[[str], List[str]]:
    """For lookups run in this process: the searchers a lookup still waits for (read from this
    thread while the engine's runs: a lookup's jobs are all added when it starts)."""
    return running.service.dispatcher.pending_searchers


def _progress(url: str, t0: float, waiting_for: Callable[[str], List[str]]) -> Callable[[Any, float], None]:
    """One stderr line per 303: the hits so far and whom it waits for (in this process, or from
    the service's X-Pending-Searchers header); stdout keeps the answer alone (--json)."""
    def show(response: Any, wait: float) -> None:
        try:
            body = response.json
            hits, rid = len(body.get("hits") or []), str(body.get("id"))
        except (ValueError, AttributeError):
            hits, rid = 0, ""
        pending = waiting_for(rid) or [label.strip() for label in
                                        response.headers.get("x-pending-searchers", "").split(",") if label.strip()]
        print(f"{url}: 303 after {time.perf_counter() - t0:.1f} s, {hits} hit{'' if hits == 1 else 's'} so far"
              f"{'; waiting for ' + ', '.join(pending) if pending else ''}; asking again in {wait:g} s",
              file=sys.stderr, flush=True)
    return show


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


def _parser() -> Parser:
    parser = Parser(prog="rc-cts", description="Custom Threat Services for IBM SOAR")
    parser.add_argument("--version", action="version", version=f"rc-cts {__version__}")
    _global_options(parser, None)
    common = Parser(add_help=False)
    _global_options(common, argparse.SUPPRESS)  # after the subcommand too, not overwriting
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", parents=[common], help="run the threat service with the installed searchers")
    run.add_argument("--allow-empty", action="store_true", help="start even with no searcher installed")
    run.set_defaults(func=cmd_run, default_level="INFO")

    check = sub.add_parser("check", parents=[common],
                           help="check the configuration, the store and the searchers as run would")
    check.add_argument("--allow-empty", action="store_true", help="no searcher installed is no error")
    check.set_defaults(func=cmd_check, default_level="WARNING")

    searchers = sub.add_parser("searchers", parents=[common],
                               help="list installed searchers, their services and artifact types; "
                                    "with --url, a running service's searchers and their breakers")
    ops_cli.add_remote_options(searchers, "metrics_token")
    searchers.set_defaults(func=cmd_searchers, default_level="WARNING")

    cache = sub.add_parser("cache", parents=[common], help="the per-searcher answer cache")
    cache_sub = cache.add_subparsers(dest="action", required=True, parser_class=Parser)
    clear = cache_sub.add_parser("clear", parents=[common], help="drop cached answers (all, one service's, "
                                 "or one artifact's): in the store app.config names, or with --url through "
                                 "the service's DELETE /admin/cache")
    clear.add_argument("--service", help="only this service's answers")
    clear.add_argument("--type", help="with --value: only this artifact's answers, e.g. net.ip")
    clear.add_argument("--value", help="the artifact's value")
    ops_cli.add_remote_options(clear, "admin_token")
    clear.set_defaults(func=cmd_cache, default_level="WARNING")

    lookup = sub.add_parser("lookup", parents=[common],
                            help="look up one artifact as the platform would, and show the hits")
    lookup.add_argument("type", help="artifact type, e.g. net.ip")
    lookup.add_argument("value", help="artifact value")
    lookup.add_argument("--url", help="a running service, e.g. http://host:9000/cts/example "
                                      "(default: run the installed searchers in this process)")
    lookup.add_argument("--service", help="without --url: only this service (default: every one)")
    lookup.add_argument("--file", help="upload this file with the artifact")
    lookup.add_argument("--value-json", action="store_true", help="the value is JSON (a number, an object...)")
    lookup.add_argument("--user", help="HTTP Basic user for --url")
    lookup.add_argument("--password", help="HTTP Basic password for --url")
    lookup.add_argument("--json", action="store_true",
                        help="print only the final answers, as JSON, on stdout (progress goes to stderr)")
    lookup.set_defaults(func=cmd_lookup, default_level="WARNING")

    new = sub.add_parser("new-searcher", parents=[common], help="write a new searcher package skeleton")
    new.add_argument("name", help="package name, e.g. my_intel")
    new.add_argument("--dir", default=".", help="where to write it (default: here)")
    new.add_argument("--type", default="net.ip", help="the artifact type its handler answers")
    new.set_defaults(func=cmd_new_searcher, default_level="WARNING")
    return parser


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--log-level", type=_level, default=default,
                        help="DEBUG, INFO, WARNING or ERROR (default: [resilient] loglevel, else INFO, "
                             "for run; WARNING otherwise)")
    parser.add_argument("-c", "--config", default=default, help=CONFIG_HELP)


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logs.configure(args.log_level or args.default_level)
    install_check.report()  # IBM's rc_cts on the path: an ERROR line naming the fix
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"rc-cts {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        LOG.error("configuration error: %s", exc)
        return 2
    except (OSError, StoreError) as exc:
        LOG.error("cannot start: %s", _error_text(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def _error_text(exc: BaseException) -> str:
    """An OSError as its message alone (no ``[Errno 98]``), with the file it concerns."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename!r}" if exc.filename else "")
    return logs.mask_secrets(str(exc))


if __name__ == "__main__":
    sys.exit(main())
