"""The access log: one INFO line per request; for a lookup (a POST, or a GET of its id) its id,
service, artifact type, outcome and duration, so a lookup needs no other INFO line.  Artifact
values never reach it: they are logged at DEBUG only.

It is on the hot path: nothing is formatted when INFO is off.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional, Set, Tuple, Union

from ..artifacts import ARTIFACT_TYPES
from ..lookups.state import Lookup
from ..store import LookupRecord, StoreError

ACCESS = logging.getLogger("rc_cts.access")
LOG = logging.getLogger("rc_cts.http.app")

# What a lookup answer was: the record it was answered from, the lookup still running, the
# store's failure, or a word (an unknown id).
Outcome = Union[LookupRecord, Lookup, StoreError, str, None]
KNOWN_TYPES = frozenset(ARTIFACT_TYPES)
UNKNOWN_TYPES_REMEMBERED = 256


def log_answer(req: Any, status: int, outcome: Outcome = None) -> None:
    """The request's line; ``req.context["lookup"]`` is (id, service, artifact type) once known."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    ms = (time.perf_counter() - req.context["t0"]) * 1000
    known: Optional[Tuple[str, str, str]] = req.context.get("lookup")
    if known is None and outcome is None:
        ACCESS.info("%s %s %d %.1fms", req.method, req.path, status, ms)
        return
    rid, service, kind = known or ("-", "-", "-")
    record = outcome.record if isinstance(outcome, Lookup) else outcome
    if isinstance(record, LookupRecord):
        rid, service, kind = record.id, record.service, str(record.artifact.get("type"))
    ACCESS.info("%s %s %d %.1fms lookup=%s service=%s type=%s outcome=%s", req.method, req.path, status, ms,
                printable(rid), printable(service), printable(kind), describe(outcome))


def describe(outcome: Outcome) -> str:
    """``whole hits=2``, ``incomplete missing=A.b,C.d hits=1``, ``pending waiting=A.b hits=0``..."""
    if isinstance(outcome, LookupRecord):
        if outcome.whole:
            return f"whole hits={len(outcome.hits)}"
        if outcome.complete:
            return f"incomplete missing={','.join(sorted(outcome.missing))} hits={len(outcome.shown_hits)}"
        return f"pending hits={len(outcome.hits)}"  # another process runs it
    if isinstance(outcome, Lookup):
        if outcome.elsewhere:
            return f"pending elsewhere hits={len(outcome.record.hits)}"
        waiting = sorted(job.handler.label for job in outcome.running | outcome.retrying)
        return (f"pending waiting={','.join(waiting) or '-'} hits={len(outcome.merged_hits())}")
    if isinstance(outcome, StoreError):
        return "store-failed"
    return str(outcome or "-")


def printable(text: str) -> str:
    """Client text as a log shows it: control characters escaped (no forged lines)."""
    return text if text.isprintable() else repr(text)


class UnknownTypes:
    """Artifact types outside the platform's list are accepted, as the protocol wants (an
    organisation may define its own), and logged once each; at most UNKNOWN_TYPES_REMEMBERED
    are remembered, then new ones are no longer logged (a client cannot grow memory or the log)."""

    def __init__(self, limit: int = UNKNOWN_TYPES_REMEMBERED):
        self.limit = limit
        self.seen: Set[str] = set()
        self.full = False

    def note(self, kind: str, service: str) -> None:
        if kind in KNOWN_TYPES or kind in self.seen or self.full:
            return
        if len(self.seen) >= self.limit:
            self.full = True
            LOG.warning("%d unknown artifact types seen: new ones are no longer logged", self.limit)
            return
        self.seen.add(kind)
        LOG.warning("artifact type %r (service %s) is not one of the platform's types: accepted, and "
                    "answered by the searchers that handle it or every type; logged once", kind, service)
