"""``python -m tests.serve_resilience run -c app.config``: the service with the searchers of
tests/resilience_searchers.py, in a process of its own (replicas sharing a Redis quota,
restarts keeping an SQLite cache)."""
import argparse
import logging
import sys

from rc_cts.config import read_config_file
from rc_cts.runner import build

from .resilience_searchers import every_searcher


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["run"])
    ap.add_argument("-c", "--config", required=True)
    args = ap.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    opts = read_config_file(args.config)
    root, _, _ = build(opts, every_searcher(opts))
    root.run()


if __name__ == "__main__":
    main()
