"""The store interface: small on purpose, so memory, SQLite and Redis implement the same contract
(the contract tests in tests/test_stores.py run against all three)."""
from __future__ import annotations

import abc
import json
import time
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from .answers import AnswerKey, CachedAnswer

if TYPE_CHECKING:
    from ..lookups.quota import Quota, Window


class StoreError(Exception):
    """The store cannot be reached now; the request is answered 503 and retried later."""


@dataclass
class LookupRecord:
    """One lookup: its artifact, the hits found so far, and how it ended.

    ``complete`` means no searcher is running or due any more, so no process resumes it.
    The answer is *whole* only if no searcher is ``missing`` as well: a searcher that failed,
    timed out or stayed incomplete leaves the record incomplete, so that later polls and
    POSTs run it again instead of serving a partial answer from the cache.

    ``file_sha256`` says the artifact came with a file: a run without it (resumed after a
    restart, or a poll's rerun) leaves the searchers that analyse files missing.
    """
    id: str
    service: str
    artifact: Dict[str, Any]
    hits: List[dict] = field(default_factory=list)        # from searchers that answered in full
    complete: bool = False
    created: float = field(default_factory=time.time)
    missing: Dict[str, int] = field(default_factory=dict)  # searcher label -> calls made so far
    partial_hits: List[dict] = field(default_factory=list)  # what the missing searchers gave
    polls: int = 0           # GETs answered since it ended incomplete (at most max_retries)
    reruns: int = 0          # times the missing searchers were run again (sets the backoff)
    rerun_at: float = 0.0    # wall-clock time before which they are not run again
    file_sha256: Optional[str] = None  # the uploaded file's digest, if the artifact came with one

    @property
    def whole(self) -> bool:
        """Every searcher answered in full: a POST or GET is answered 200 from this record."""
        return self.complete and not self.missing

    @property
    def shown_hits(self) -> List[dict]:
        """Every hit found, partial answers included: what a 303 (or a last 200) shows."""
        return self.hits + self.partial_hits if self.partial_hits else self.hits

    def to_json(self) -> str:
        # its fields hold JSON values only: no need for asdict's deep copy
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "LookupRecord":
        """Records of older versions (fields missing) and newer ones (fields unknown here)
        load alike, so replicas of two versions can share a store during an upgrade."""
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class Store(abc.ABC):
    """Records keyed by request id, expiring after the TTL; leases, so that of several
    processes sharing a store one runs each lookup, and another takes over if it dies; and
    the per-searcher answer cache, bounded apart from the records (``answers_max_entries``,
    ``answers_max_bytes``: bytes as the length of each answer's JSON text)."""

    resumable = True  # records outlive the process: pending lookups are resumed or taken over
    blocking = True   # calls may wait on I/O: they run in the store gate's thread, not the loop's

    @abc.abstractmethod
    def get(self, request_id: str) -> Optional[LookupRecord]:
        """The record, or None if unknown or expired."""

    @abc.abstractmethod
    def put(self, record: LookupRecord) -> None:
        """Insert or replace the record (pending or complete); its TTL starts again."""

    @abc.abstractmethod
    def pending(self, limit: int = 1000) -> List[LookupRecord]:
        """Records not complete yet (to resume after a restart, or take over)."""

    @abc.abstractmethod
    def lease(self, request_id: str, owner: str, seconds: float) -> bool:
        """Take the lease on a lookup, or renew it if ``owner`` holds it; False if another
        owner holds an unexpired lease."""

    @abc.abstractmethod
    def release(self, request_id: str, owner: str) -> None:
        """Give the lease up, if ``owner`` holds it."""

    @abc.abstractmethod
    def get_answers(self, keys: Sequence[AnswerKey]) -> Dict[AnswerKey, CachedAnswer]:
        """The answers kept for ``keys`` that have not expired (``CachedAnswer.expires`` > now,
        wall clock); missing keys, and entries that do not load, are absent from the dict."""

    @abc.abstractmethod
    def put_answers(self, entries: Sequence[Tuple[AnswerKey, CachedAnswer]]) -> None:
        """Insert or replace; each expires at its own ``expires``.  An entry already expired, or
        larger than the whole byte bound (logged), is not stored, and removes the one it replaces.
        Past the bounds the entries that expire soonest go first (memory: least recently used)."""

    @abc.abstractmethod
    def clear_answers(self, service: Optional[str] = None, artifact: Optional[str] = None) -> int:
        """Remove the answers of ``service`` (all services if None) and, if given, of one artifact
        digest only; returns how many unexpired answers were removed."""

    def get_with_answers(self, request_id: str, keys: Sequence[AnswerKey]) \
            -> Tuple[Optional[LookupRecord], Dict[AnswerKey, CachedAnswer]]:
        """The record and the answers in one call: a POST needs both.  Stores where a call is
        a round trip (Redis) make it one."""
        return self.get(request_id), (self.get_answers(keys) if keys else {})

    def ping(self) -> None:
        """A cheap round trip, for /readyz: StoreError if the store cannot be reached now.
        Stores override it with something cheaper than this read of an id that never exists."""
        self.get("rc-cts-ping")

    def make_quota(self, name: str, windows: Sequence["Window"]) -> "Quota":
        """The rate-limit windows of searcher ``name``: per process, unless the store is shared."""
        from ..lookups.quota import LocalQuota
        return LocalQuota(windows)

    def close(self) -> None:
        """Release connections and files."""
