"""pytest fixtures for searcher authors, registered through the ``pytest11`` entry point,
so a searcher is tested in three lines::

    def test_bad_ip(cts_lookup):
        hits = cts_lookup(MySearcher, "net.ip", "10.0.0.1", opts={"my_section": {"key": "x"}})
        assert hits[0]["props"][0]["value"] == "malicious"

Both fixtures run the real service (on 127.0.0.1, a free port, in this process) and talk
HTTP to it as the platform does.  ``fake_api`` stands in for the provider's API (a local
server: no test touches the internet); see ``rc_cts.fakeapi``.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Mapping, Optional

import pytest

from .fakeapi import FakeApi
from .hits import service_of
from .runner import RunningService, standalone_opts, start_in_thread

TEST_DEFAULTS = {"sync_wait_secs": "5", "incomplete_retry_secs": "0.05", "max_retries": "3"}


def hit_props(hit: Mapping[str, Any]) -> Dict[str, dict]:
    """A hit's props by name: ``hit_props(hit)["Score"] == {"type": "number", ...}``."""
    return {p["name"]: p for p in hit["props"]}


def hit_values(hit: Mapping[str, Any]) -> Dict[str, Any]:
    """A hit's prop values by name: ``hit_values(hit)["Score"] == 87``."""
    return {p["name"]: p["value"] for p in hit["props"]}


class SearcherFailed(AssertionError):
    """A searcher raised during ``cts_lookup``; the message carries its error."""


def _opts(opts: Optional[Mapping[str, Any]], options: Dict[str, Any]) -> Dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in (opts or {}).items()}
    merged.setdefault("webserver", {}).update({"server": "127.0.0.1", "port": "0"})
    cts = merged.setdefault("custom_threat_service", {})
    for key, value in {**TEST_DEFAULTS, **options}.items():
        cts.setdefault(key, str(value))
    return merged


@pytest.fixture
def fake_api():
    """A local stand-in for a provider's API (``rc_cts.fakeapi.FakeApi``): ``.url``,
    ``.answer(path, status, body, headers, times)``, ``.route(path, fn)``, ``.calls(path)``."""
    api = FakeApi().start()
    yield api
    api.stop()


@pytest.fixture
def cts_service():
    """``cts_service(*searchers, opts=None, **cts_options)``: a running service with these
    searcher instances; ``.url``, ``.client()``; stopped after the test."""
    running: List[RunningService] = []

    def start(*searchers, opts: Optional[Mapping[str, Any]] = None, **options) -> RunningService:
        service = start_in_thread(_opts(opts, options), list(searchers))
        running.append(service)
        return service

    yield start
    for service in running:
        service.stop()


class _Failures(logging.Handler):
    """A searcher's failures as the service logs them: the ERROR line, and the exception (its
    message may hold the artifact's value, so the service logs it at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            self.messages.append(record.getMessage())
        elif record.exc_info and record.exc_info[1] is not None and self.messages:
            exc = record.exc_info[1]
            self.messages[-1] += f": {type(exc).__name__}: {exc}"


@pytest.fixture
def cts_lookup(cts_service):
    """``cts_lookup(searcher, artifact_type, value, file=None, opts=None, **cts_options)``:
    the hits the searcher (a class, created with ``opts``, or an instance) returns for the
    artifact.  Raises ``SearcherFailed`` if the searcher raised."""

    def lookup(searcher, artifact_type: str, value: Any, file: Optional[bytes] = None,
               opts: Optional[Mapping[str, Any]] = None, **options) -> List[dict]:
        full_opts = _opts(opts, options)
        if isinstance(searcher, type):
            searcher = searcher(opts=standalone_opts(full_opts))
        service = cts_service(searcher, opts=full_opts)
        name = service_of(searcher.channel)
        failures = _Failures()
        logger = logging.getLogger("rc_cts.lookups.calls")
        level = logger.level
        logger.addHandler(failures)
        logger.setLevel(logging.DEBUG)  # for the exceptions' messages: a test may see the values
        try:
            response, _ = service.client().lookup(name, {"type": artifact_type, "value": value}, file,
                                                  poll_secs=0.02)
        finally:
            logger.removeHandler(failures)
            logger.setLevel(level)
        if failures.messages:
            raise SearcherFailed("; ".join(failures.messages))
        if response.status != 200:
            raise AssertionError(f"lookup answered {response.status}: {response.raw[:500]!r}")
        return response.json["hits"]

    return lookup
