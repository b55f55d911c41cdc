"""The default store: a cachetools TTL cache in this process's memory."""
from __future__ import annotations

import logging
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from cachetools import TLRUCache, TTLCache

from .answers import AnswerKey, CachedAnswer, live_answers, prepare_entries
from .base import LookupRecord, Store

LOG = logging.getLogger(__name__)
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_ANSWER_ENTRIES = 100000


class _RecordCache(TTLCache):
    """A TTL cache of records as JSON text, bounded in bytes (cachetools' ``maxsize`` with
    ``getsizeof``) and in entries: past either bound, the least recently used go first.

    Text, not objects: thousands of cached records of dicts and lists are objects the
    garbage collector would walk on every full collection; a string is not one of them."""

    def __init__(self, max_entries: int, max_bytes: int, ttl: float):
        super().__init__(maxsize=max_bytes, ttl=ttl, getsizeof=len)
        self.max_entries = max_entries

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)  # ValueError if the record alone passes the byte bound
        while len(self) > self.max_entries:
            self.popitem()


def _expires(key, value: Tuple[float, str], now: float) -> float:
    return value[0]


def _text_size(value: Tuple[float, str]) -> int:
    return len(value[1])


class _AnswerCache(TLRUCache):
    """Answers as ``(expires, JSON text)``, each expiring at its own time (wall clock, as the
    answer says), bounded in bytes of text and in entries: past either, the least recently used
    go first.  A tuple of a float and a str is no object the garbage collector keeps walking."""

    def __init__(self, max_entries: int, max_bytes: int):
        super().__init__(maxsize=max_bytes, ttu=_expires, timer=time.time, getsizeof=_text_size)
        self.max_entries = max_entries

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()


class MemoryStore(Store):
    """Fast and simple; results are lost on restart and not shared between processes."""

    resumable = False
    blocking = False  # a dict in this process: called inline

    def __init__(self, maxsize: int = 10000, ttl: float = 600, max_bytes: int = DEFAULT_MAX_BYTES,
                 answers_max_entries: int = DEFAULT_ANSWER_ENTRIES, answers_max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self.answers_max_entries = answers_max_entries
        self.answers_max_bytes = answers_max_bytes
        self._cache = _RecordCache(maxsize, max_bytes, ttl)
        self._answers = _AnswerCache(answers_max_entries, answers_max_bytes)
        self._leases: TTLCache = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()  # TTLCache is not thread-safe; tools and benchmarks read it too

    def get(self, request_id: str) -> Optional[LookupRecord]:
        with self._lock:
            text = self._cache.get(request_id)
        return LookupRecord.from_json(text) if text is not None else None

    def put(self, record: LookupRecord) -> None:
        text = record.to_json()
        with self._lock:
            try:
                self._cache[record.id] = text
            except ValueError:  # larger than the whole bound: the lookup is answered, not kept
                self._cache.pop(record.id, None)  # nor an earlier (pending) version of it
                LOG.warning("lookup %s: its result (%d bytes) is larger than the memory store "
                            "(cache_max_mb, %d bytes); answered but not kept", record.id,
                            len(text), self.max_bytes)

    def get_answers(self, keys: Sequence[AnswerKey]) -> Dict[AnswerKey, CachedAnswer]:
        with self._lock:
            values = [(key, self._answers.get(key)) for key in keys]
        return live_answers([(key, value[1]) for key, value in values if value is not None])

    def put_answers(self, entries: Sequence[Tuple[AnswerKey, CachedAnswer]]) -> None:
        keep, drop = prepare_entries(entries, self.answers_max_bytes)
        with self._lock:
            for key in drop:
                self._answers.pop(key, None)
            for entry in keep:
                self._answers[entry.key] = (entry.expires, entry.text)

    def clear_answers(self, service: Optional[str] = None, artifact: Optional[str] = None) -> int:
        with self._lock:
            self._answers.expire()
            doomed = [k for k in self._answers if (service is None or k.service == service)
                      and (artifact is None or k.artifact == artifact)]
            for key in doomed:
                self._answers.pop(key, None)
        return len(doomed)

    @property
    def nbytes(self) -> int:
        """The size of the records held, as ``record_size`` measures them."""
        with self._lock:
            return int(self._cache.currsize)

    def ping(self) -> None:
        """Memory in this process: always reachable."""

    def pending(self, limit: int = 1000) -> List[LookupRecord]:
        with self._lock:
            texts = list(self._cache.values())
        records = (LookupRecord.from_json(text) for text in texts)
        return [r for r in records if not r.complete][:limit]

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
