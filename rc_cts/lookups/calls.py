"""Running one searcher handler, off the event loop, and turning what it gave into hits.

Searchers return a hit, a list of hits, None, or yield any of those; they may
raise ThreatLookupIncompleteException to be asked again, or fail.  A handler
written as ``async def`` (a coroutine or an async generator) is awaited on the
framework's asyncio loop instead of a thread.  Each call ends in exactly one
``Outcome``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import traceback
import types
from dataclasses import dataclass, field
from typing import Any, Callable, List

from ..events import LookupFailed, ThreatLookupIncompleteException
from .provider_quota import CURRENT_CALL, CallSignals, RateLimited

LOG = logging.getLogger(__name__)

DONE, INCOMPLETE, FAILED, TIMED_OUT = "done", "incomplete", "failed", "timed out"
DEFERRED = "deferred"  # not called, or refused by the provider: its quota is spent for ``wait_secs``
SKIPPED = "skipped"    # not called: the searcher's circuit breaker is open


@dataclass
class Outcome:
    status: str                      # DONE, INCOMPLETE, FAILED, TIMED_OUT, DEFERRED or SKIPPED
    hits: List[dict] = field(default_factory=list)
    wait_secs: float = 0.0           # DEFERRED: how long the searcher's quota is spent
    pause_secs: float = 0.0          # the provider said its quota is spent after this call


def is_async_handler(fn: Callable) -> bool:
    """Whether the handler is awaited on the asyncio loop rather than run in a thread."""
    target = getattr(fn, "__func__", fn)
    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def call_searcher(fn: Callable, name: str, event: Any, pass_event: bool) -> Outcome:
    """Call ``fn`` the way circuits would, and collect its hits. Runs in a worker thread."""
    hits: List[dict] = []
    signals = CallSignals()
    token = CURRENT_CALL.set(signals)
    try:
        result = fn(event) if pass_event else fn()
        _collect(result, hits, name)
        return Outcome(DONE, hits, pause_secs=signals.pause_secs)
    except Exception as exc:
        return _failed(exc, hits, name, event)
    finally:
        CURRENT_CALL.reset(token)


async def call_async_searcher(fn: Callable, name: str, event: Any, pass_event: bool) -> Outcome:
    """Await an ``async def`` handler and collect its hits. Runs on the asyncio loop."""
    hits: List[dict] = []
    signals = CallSignals()
    CURRENT_CALL.set(signals)  # the call's own task: its context is a copy, dropped with it
    try:
        result = fn(event) if pass_event else fn()
        if inspect.isasyncgen(result):
            async for item in result:
                _collect(item, hits, name)
        else:
            _collect(await result if inspect.isawaitable(result) else result, hits, name)
        return Outcome(DONE, hits, pause_secs=signals.pause_secs)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return _failed(exc, hits, name, event)


def _failed(exc: Exception, hits: List[dict], name: str, event: Any) -> Outcome:
    if isinstance(exc, RateLimited):
        LOG.info("searcher %s: the provider's quota is spent (%s); its calls wait %.1fs",
                 name, exc, exc.retry_after)
        return Outcome(DEFERRED, wait_secs=exc.retry_after, pause_secs=exc.retry_after)
    if isinstance(exc, ThreatLookupIncompleteException):
        LOG.debug("searcher %s: lookup %s incomplete (%s); it will be asked again",
                 name, event.request_id, exc)
        return Outcome(INCOMPLETE, hits)
    if isinstance(exc, LookupFailed):  # its message says it all
        LOG.error("searcher %s failed on %s lookup %s: %s", name, event.name, event.request_id, exc)
        return Outcome(FAILED, [])
    # An exception's message may carry the artifact's value (requests puts the URL in its
    # HTTPError): the ERROR line names its type and where it was raised; the rest is at DEBUG.
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {os.path.basename(frame.filename)}:{frame.lineno} in {frame.name}" if frame else ""
    LOG.error("searcher %s failed on %s lookup %s: %s%s (details at DEBUG)", name, event.name,
              event.request_id, type(exc).__name__, where)
    LOG.debug("searcher %s failed on lookup %s", name, event.request_id,
              exc_info=(type(exc), exc, exc.__traceback__))
    return Outcome(FAILED, [])


def _collect(result: Any, hits: List[dict], name: str) -> None:
    if result is None:
        return
    if isinstance(result, dict):
        hit = _checked_hit(result, name)
        if hit is not None:
            hits.append(hit)
    elif isinstance(result, (list, tuple, types.GeneratorType)) or hasattr(result, "__next__"):
        for item in result:
            _collect(item, hits, name)
    else:
        LOG.error("searcher %s returned %s, not a Hit: ignored", name, type(result).__name__)


def _checked_hit(hit: dict, name: str):
    """A plain-JSON copy of a valid hit, or None (logged) for anything else."""
    props = hit.get("props")
    if not isinstance(props, list) or not all(
            isinstance(p, dict) and {"type", "name", "value"} <= p.keys() for p in props):
        LOG.error("searcher %s returned a hit without valid 'props': ignored", name)
        return None
    try:
        return json.loads(json.dumps(hit))
    except (TypeError, ValueError) as exc:
        LOG.error("searcher %s returned a hit that is not JSON (%s): ignored", name, exc)
        return None

