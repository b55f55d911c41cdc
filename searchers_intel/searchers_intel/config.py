"""The app.config section of each searcher (`resilient-circuits config -u` adds one per
entry point; `rc-cts check` reads them too).  Each module keeps its own text in ``CONFIG``."""
from importlib import import_module


def _section(module: str) -> str:
    return import_module(f"searchers_intel.{module}").CONFIG


def internetdb() -> str:
    return _section("internetdb")
