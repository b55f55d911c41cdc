"""The store interface: small on purpose, so persistent and shared stores can implement it."""
from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class LookupRecord:
    """One lookup: its artifact, the hits found so far, and whether every searcher is done."""
    id: str
    service: str
    artifact: Dict[str, Any]
    hits: List[dict] = field(default_factory=list)
    complete: bool = False
    created: float = field(default_factory=time.time)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "LookupRecord":
        return cls(**data)


class Store(abc.ABC):
    """Records keyed by request id; every implementation expires them after its TTL."""

    @abc.abstractmethod
    def get(self, request_id: str) -> Optional[LookupRecord]:
        """The record, or None if unknown or expired."""

    @abc.abstractmethod
    def put(self, record: LookupRecord) -> None:
        """Insert or replace the record (pending or complete)."""

    def close(self) -> None:
        """Release connections and files."""
