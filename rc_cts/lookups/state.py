"""The state of one lookup in this process: its jobs (one per searcher handler), their
outcomes, the hits so far, who waits for the answer, and the record it ends as."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Set, Tuple, Union

from ..events import ThreatServiceLookupEvent
from ..http.files import ArtifactFile
from ..scheduler import TimerHandle
from ..store import LookupRecord, StoreError
from ..store.answers import AnswerKey, CachedAnswer
from .bulkhead import Call
from .calls import DONE
from .registry import SearcherHandler

# What a waiter is told: the ended record, None (still running at its deadline), or the
# StoreError that kept the lookup from starting.
Answer = Union[LookupRecord, StoreError, None]
Waiter = Callable[[Answer], None]


class Job:
    """One handler's part in one lookup."""
    __slots__ = ("handler", "attempts", "status", "call", "key", "cached")

    def __init__(self, handler: SearcherHandler, key: AnswerKey, attempts: int = 0):
        self.handler = handler
        self.key = key              # where its answer is cached
        self.attempts = attempts
        self.status: Optional[str] = None  # the last call's DONE, INCOMPLETE, FAILED, TIMED_OUT or SKIPPED
        self.call: Optional[Call] = None
        self.cached: Optional[CachedAnswer] = None  # answered from the cache, not called

    @property
    def waits_for_quota(self) -> bool:
        """Not called yet because its searcher's quota is spent: it waits, whatever the deadline."""
        return self.handler.searcher.bulkhead.paused_for() > 0 and (self.call is None or self.call.state == "queued")


class Lookup:
    """Every searcher of the service, or (a rerun) only the searchers ``rerun`` names, on top
    of the hits the others gave before.  ``starting`` until the store has taken its lease."""

    def __init__(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
                 rerun: Optional[Dict[str, int]] = None,
                 answers: Optional[Dict[AnswerKey, CachedAnswer]] = None):
        self.record = record
        self.channel = channel
        self.file = file
        self.rerun = rerun  # searcher label -> calls made in earlier runs; None runs them all
        self.answers = answers  # cached answers read with the record (None: not read): searchers not to call
        self.keys: Optional[List[Tuple[SearcherHandler, AnswerKey]]] = None  # their keys, if known already
        self.event = ThreatServiceLookupEvent(request_id=record.id, name=record.artifact["type"],
                                              artifact=record.artifact, channel=channel, file=file)
        self.starting = True
        self.jobs: List[Job] = []
        self.running: Set[Job] = set()
        self.retrying: Set[Job] = set()
        self.hits: Dict[Job, List[dict]] = {}
        self.waiters: List[Tuple[Waiter, TimerHandle]] = []
        self.deadline_timer: Optional[TimerHandle] = None
        self.final: Answer = None       # the ended record, or the StoreError that kept it from starting
        self.elsewhere = False          # another process holds its lease and runs it

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def settled(self) -> bool:
        return not self.starting and not self.running and not self.retrying

    def earlier_hits(self) -> List[dict]:
        """A rerun builds on the hits the other searchers gave before; a first run on none."""
        return self.record.hits if self.rerun is not None else []

    def merged_hits(self) -> List[dict]:
        return self.earlier_hits() + [hit for job in self.jobs for hit in self.hits.get(job, ())]

    def snapshot(self, complete: bool, backoff_secs: float = 0.0) -> LookupRecord:
        """The record to store: pending with the hits so far, or ended, whole or incomplete."""
        if not complete:
            return replace(self.record, hits=self.merged_hits(), complete=False, missing={},
                           partial_hits=[])
        done = [job for job in self.jobs if job.status == DONE]
        missing = {job.handler.label: job.attempts for job in self.jobs if job.status != DONE}
        hits = self.earlier_hits() + [hit for job in done for hit in self.hits.get(job, ())]
        partial = [hit for job in self.jobs if job.status != DONE for hit in self.hits.get(job, ())]
        return replace(self.record, hits=hits, complete=True, missing=missing, partial_hits=partial,
                       rerun_at=time.time() + backoff_secs if missing else 0.0)

    def tell(self, answer: Answer) -> None:
        """Give every waiter its answer."""
        waiters, self.waiters = self.waiters, []
        for waiter, timer in waiters:
            timer.cancel()
            waiter(answer)
