"""Lookup results in the store: read, written behind, kept while the store is down, leased.

Every call goes through the store gate, so the event loop never waits on the store.
A result is readable from memory (``kept``) from the moment its lookup ends until the
store has taken it: while the write is on its way, and for as long as the store is down.
"""
from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..scheduler import Scheduler
from ..store import LookupRecord, StoreError
from ..store.answers import AnswerKey, CachedAnswer
from ..store.gate import StoreGate

LOG = logging.getLogger(__name__)

SAVE_RETRY_SECS = 1.0     # how often results the store could not take are offered again
REMOTE_POLL_SECS = 0.05   # how often a request waiting on another replica's lookup reads the store

OnRecord = Callable[[Optional[LookupRecord], Optional[StoreError]], None]
Answers = Dict[AnswerKey, CachedAnswer]
AnswerEntries = List[Tuple[AnswerKey, CachedAnswer]]


class Results:
    """The lookup layer's one way to the store."""

    def __init__(self, gate: StoreGate, scheduler: Scheduler, lease_secs: float):
        self.gate = gate
        self.scheduler = scheduler
        self.lease_secs = lease_secs
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.kept: Dict[str, LookupRecord] = {}  # ended here, not confirmed in the store yet
        self._retrying = False
        self._ping_waiters: List[Callable[[Optional[StoreError]], None]] = []  # a ping is out

    @property
    def resumable(self) -> bool:
        return self.gate.store.resumable

    def read(self, rid: str, on_record: OnRecord) -> None:
        """``on_record(record or None, None)``, or ``(None, StoreError)``."""
        kept = self.kept.get(rid)
        if kept is not None:
            on_record(kept, None)
        else:
            self.gate.call(lambda store: store.get(rid), on_record)

    def read_with_answers(self, rid: str, keys: Sequence[AnswerKey],
                          on_read: Callable[[Optional[LookupRecord], Answers, Optional[StoreError]], None]) -> None:
        """For a POST, in one store call: the record (or the one kept here), and the cached
        answers of the service's searchers for the artifact."""
        def back(value: Optional[Tuple[Optional[LookupRecord], Answers]], error: Optional[StoreError]) -> None:
            if error is not None or value is None:
                on_read(None, {}, error)
                return
            record, answers = value
            on_read(self.kept.get(rid, record), answers, None)
        keys = list(keys)
        self.gate.call(lambda store: store.get_with_answers(rid, keys), back)

    def put_answers(self, entries: AnswerEntries) -> None:
        """Cache searchers' answers (a background refresh's); a failure is logged, nothing waits."""
        self.gate.write(lambda store: store.put_answers(entries),
                        lambda exc: LOG.warning("answers not cached: %s", exc))

    def clear_answers(self, service: Optional[str], artifact: Optional[str],
                      on_done: Callable[[Optional[int], Optional[StoreError]], None]) -> None:
        """Drop cached answers: every service's, one service's, or one artifact's on it."""
        self.gate.call(lambda store: store.clear_answers(service, artifact), on_done)

    def ping(self, on_result: Callable[[Optional[StoreError]], None]) -> None:
        """For /readyz: ``on_result(None)`` if the store answers a ping within the gate's
        deadline, else ``on_result(StoreError)``; the loop never waits on it.  One ping at a
        time, its answer shared by every probe that came meanwhile: a flood of probes (they
        need no credentials) must not fill the store gate's queue ahead of the lookups."""
        if self._ping_waiters:
            self._ping_waiters.append(on_result)
            return
        self._ping_waiters = [on_result]

        def done(_value: object, error: Optional[StoreError]) -> None:
            waiters, self._ping_waiters = self._ping_waiters, []
            for waiter in waiters:
                waiter(error)
        self.gate.call(lambda store: store.ping(), done)

    def claim(self, pending: Callable[[], LookupRecord],
              on_claim: Callable[[bool, Optional[StoreError]], None]) -> None:
        """Take the lease on a lookup and store it pending (``pending()``, so a GET on any
        replica finds it): ``on_claim(True, None)``; ``(False, None)`` if another process
        holds the lease."""
        if not self.resumable:  # this process's own memory: nobody else reads or runs it
            on_claim(True, None)
            return
        record = pending()

        def claim(store) -> bool:
            if not store.lease(record.id, self.owner, self.lease_secs):
                return False
            store.put(record)
            return True
        self.gate.call(claim, on_claim)

    def note(self, record: LookupRecord, shared_only: bool = False) -> None:
        """Store a record nobody waits on (hits so far, a poll count); failures are logged.
        ``shared_only``: only where other processes read it (hits so far, for their GETs)."""
        if shared_only and not self.resumable:
            return
        self.gate.write(lambda store: store.put(record),
                        lambda exc: LOG.warning("lookup %s not updated in the store: %s", record.id, exc))

    def save(self, record: LookupRecord, answers: Sequence[Tuple[AnswerKey, CachedAnswer]] = ()) -> None:
        """Store an ended lookup, with the searchers' answers to cache, and give its lease up;
        the record is kept in memory until the store has it (the answers are not: a cache)."""
        self.kept[record.id] = record

        def written(_value, error: Optional[StoreError]) -> None:
            if error is not None:
                LOG.warning("result of %s kept in memory until the store is back: %s", record.id, error)
                self._retry_later()
            elif self.kept.get(record.id) is record:
                del self.kept[record.id]

        self.gate.call(lambda store: self._write_ended(store, [record], answers), written)

    def _write_ended(self, store, records, answers: Sequence[Tuple[AnswerKey, CachedAnswer]] = ()) -> None:
        """In the gate: the ended records, and their leases given up (where leases exist);
        then the answers to cache."""
        for record in records:
            store.put(record)
            if store.resumable:
                store.release(record.id, self.owner)
        if answers:
            store.put_answers(answers)

    def _retry_later(self) -> None:
        if not self._retrying:
            self._retrying = True
            self.scheduler.call_later(SAVE_RETRY_SECS, self._save_kept)

    def _save_kept(self) -> None:
        self._retrying = False
        records = list(self.kept.values())

        def done(_value, error: Optional[StoreError]) -> None:
            if error is not None:
                self._retry_later()
                return
            for record in records:
                if self.kept.get(record.id) is record:
                    del self.kept[record.id]
            LOG.info("the store is back: every kept result is stored")

        if records:
            self.gate.call(lambda store: self._write_ended(store, records), done)

    def renew(self, rids) -> None:
        rids = list(rids)

        def renew(store) -> None:
            for rid in rids:
                if not store.lease(rid, self.owner, self.lease_secs):
                    LOG.warning("lease of lookup %s was taken over elsewhere; finishing it here too", rid)

        self.gate.write(renew, lambda exc: LOG.warning("cannot renew leases: %s", exc))

    def pending(self, on_records: Callable[[list], None]) -> None:
        def back(records, error: Optional[StoreError]) -> None:
            if error is not None:
                LOG.warning("cannot look for abandoned lookups: %s", error)
            else:
                on_records(records)
        self.gate.call(lambda store: store.pending(), back)

    def wait_elsewhere(self, rid: str, timeout: float, callback: Callable) -> None:
        """For a lookup another process runs: ``callback(record)`` once the store has it
        ended, or ``callback(None)`` after ``timeout``."""
        deadline = time.monotonic() + timeout

        def poll() -> None:
            self.gate.call(lambda store: store.get(rid), got)

        def got(record: Optional[LookupRecord], error: Optional[StoreError]) -> None:
            if record is not None and record.complete:
                callback(record)
            elif time.monotonic() >= deadline:
                callback(None)
            else:
                self.scheduler.call_later(REMOTE_POLL_SECS, poll)

        poll()

    def close(self) -> None:
        self.gate.close()
