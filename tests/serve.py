"""``python -m tests.serve run -c app.config``: the service with the test searchers, in a process
of its own, for tests that restart or kill services (sqlite restarts, Redis replicas, uploads)."""
import argparse
import logging
import os
import sys
import time

from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, searcher_channel
from rc_cts.config import read_config_file
from rc_cts.runner import build

from .searchers import HitSearcher, SampleAnalysisSearcher, SampleNameSearcher


class CountingSearcher(BaseComponent):
    """/count: net.name "label:secs" sleeps secs; every run is logged to [count_searcher] log."""
    channel = searcher_channel("count")

    def __init__(self, opts):
        super().__init__()
        self.log = opts.get("count_searcher", {}).get("log")

    @handler("net.name")
    def run(self, event, *args, **kwargs):
        label, secs = event.artifact["value"].split(":")
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {label} {time.time():.3f}\n")
        time.sleep(float(secs))
        return Hit(StringProp(name="Label", value=label), StringProp(name="Pid", value=str(os.getpid())))


def default_searchers(opts) -> list:
    return [CountingSearcher(opts), HitSearcher(), SampleAnalysisSearcher(opts), SampleNameSearcher()]


def main(make_searchers=default_searchers) -> None:
    """``run -c app.config``: the service with ``make_searchers(opts)``, logging at INFO to stderr."""
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["run"])
    ap.add_argument("-c", "--config", required=True)
    args = ap.parse_args()
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    opts = read_config_file(args.config)
    root, _, _ = build(opts, make_searchers(opts))
    root.run()


if __name__ == "__main__":
    main()
