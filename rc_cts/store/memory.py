"""The default store: a cachetools TTL cache in this process's memory."""
from __future__ import annotations

import threading
from typing import Optional

from cachetools import TTLCache

from .base import LookupRecord, Store


class MemoryStore(Store):
    """Fast and simple; results are lost on restart and not shared between processes."""

    def __init__(self, maxsize: int = 10000, ttl: float = 600):
        self._cache: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()  # TTLCache is not thread-safe; benchmarks and tools read it too

    def get(self, request_id: str) -> Optional[LookupRecord]:
        with self._lock:
            return self._cache.get(request_id)

    def put(self, record: LookupRecord) -> None:
        with self._lock:
            self._cache[record.id] = record

    def __len__(self) -> int:
        with self._lock:
            return len(self._cache)
