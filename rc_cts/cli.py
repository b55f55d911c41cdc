"""``rc-cts``: run the threat service standalone."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from . import __version__
from .config import ConfigError, find_config_file, read_config_file, settings_from_opts

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
    from .runner import build  # imported late: --help stays fast
    opts = _load_opts(args.config)
    settings_from_opts(opts)  # fail early, with the option's name, on a bad value
    root, _, _ = build(opts)
    root.run()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="rc-cts", description="Custom Threat Services for IBM SOAR")
    parser.add_argument("--version", action="version", version=f"rc-cts {__version__}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the threat service with the installed searchers")
    run.add_argument("-c", "--config", help="app.config file (default: $APP_CONFIG_FILE, "
                                            "else ~/.resilient/app.config, else embedded defaults)")
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        return args.func(args)
    except ConfigError as exc:
        LOG.error("configuration error: %s", exc)
        return 2
    except OSError as exc:
        LOG.error("cannot start: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
