"""The default store: a cachetools TTL cache in this process's memory."""
from __future__ import annotations

import threading
import time
from typing import List, Optional, Tuple

from cachetools import TTLCache

from .base import LookupRecord, Store


class MemoryStore(Store):
    """Fast and simple; results are lost on restart and not shared between processes."""

    resumable = False
    blocking = False  # a dict in this process: called inline

    def __init__(self, maxsize: int = 10000, ttl: float = 600):
        self._cache: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._leases: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()  # TTLCache is not thread-safe; tools and benchmarks read it too

    def get(self, request_id: str) -> Optional[LookupRecord]:
        with self._lock:
            return self._cache.get(request_id)

    def put(self, record: LookupRecord) -> None:
        with self._lock:
            self._cache[record.id] = record

    def pending(self, limit: int = 1000) -> List[LookupRecord]:
        with self._lock:
            return [r for r in self._cache.values() if not r.complete][:limit]

    def lease(self, request_id: str, owner: str, seconds: float) -> bool:
        now = time.monotonic()
        with self._lock:
            current: Optional[Tuple[str, float]] = self._leases.get(request_id)
            if current is not None and current[0] != owner and current[1] > now:
                return False
            self._leases[request_id] = (owner, now + seconds)
            return True

    def release(self, request_id: str, owner: str) -> None:
        with self._lock:
            current = self._leases.get(request_id)
            if current is not None and current[0] == owner:
                del self._leases[request_id]

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
