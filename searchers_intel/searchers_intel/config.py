"""The app.config section of each searcher (`resilient-circuits config -u` adds one per
entry point; `rc-cts check` reads them too).  Each module keeps its own text in ``CONFIG``."""
from importlib import import_module


def _section(module: str) -> str:
    return import_module(f"searchers_intel.{module}").CONFIG


def abuseipdb() -> str:
    return _section("abuseipdb")


def greynoise() -> str:
    return _section("greynoise")


def internetdb() -> str:
    return _section("internetdb")


def malwarebazaar() -> str:
    return _section("malwarebazaar")


def misp() -> str:
    return _section("misp")


def otx() -> str:
    return _section("otx")


def threatfox() -> str:
    return _section("threatfox")


def urlhaus() -> str:
    return _section("urlhaus")


def virustotal() -> str:
    return _section("virustotal")
