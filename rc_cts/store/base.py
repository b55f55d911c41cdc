"""The store interface: small on purpose, so memory, SQLite and Redis implement the same contract
(the contract tests in tests/test_stores.py run against all three)."""
from __future__ import annotations

import abc
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


class StoreError(Exception):
    """The store cannot be reached now; the request is answered 503 and retried later."""


@dataclass
class LookupRecord:
    """One lookup: its artifact, the hits found so far, and whether every searcher is done."""
    id: str
    service: str
    artifact: Dict[str, Any]
    hits: List[dict] = field(default_factory=list)
    complete: bool = False
    created: float = field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "LookupRecord":
        return cls(**json.loads(text))


class Store(abc.ABC):
    """Records keyed by request id, expiring after the TTL; and leases, so that of several
    processes sharing a store one runs each lookup, and another takes over if it dies."""

    resumable = True  # records outlive the process: pending lookups are resumed or taken over

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

    def close(self) -> None:
        """Release connections and files."""
