"""Lookups: call each searcher handler the registry has for the artifact, in that
searcher's bulkhead, collect hits, retry incomplete searchers, write the store.

Lookups do not travel through circuits' event loop: a lookup submits the
registered handlers directly.  A call's end comes back to the loop thread as one
``run_in_loop`` event (about 0.2 ms), where the result is merged, so all lookup
state is touched by the loop thread only.
"""
from __future__ import annotations

import functools
import logging
import os
import socket
import time
import uuid
from dataclasses import replace
from typing import Any, Callable, Dict, List, Mapping, Optional

from circuits import BaseComponent, Event, handler
from circuits.core.events import registered

from .async_loop import AsyncLoop
from .bulkhead import Bulkhead, Call, SearcherLimits
from .events import ThreatServiceLookupEvent
from .files import ArtifactFile
from .hits import searcher_channel
from .registry import SearcherHandler, SearcherRegistry, is_searcher_channel, service_of
from .scheduler import Scheduler, TimerHandle
from .searcher_calls import DONE, INCOMPLETE, Outcome, call_async_searcher, call_searcher
from .store import LookupRecord, Store, StoreError

__all__ = ["Dispatcher", "Lookup", "is_searcher_channel", "service_of"]

LOG = logging.getLogger(__name__)
REMOTE_POLL_SECS = 0.05   # how often a request waiting on another replica's lookup reads the store
SAVE_RETRY_SECS = 1.0     # how often results the store could not take are offered again
MAX_BACKOFF_FACTOR = 12   # missing searchers are run again after at most 12 x incomplete_retry_secs
DEFER_RETRY_SECS = 0.5    # a call refused by a full bulkhead queue is offered again this often


class run_in_loop(Event):
    """Run a callable in the event loop thread (fired from worker threads)."""


class _Job:
    """One handler's part in one lookup."""
    __slots__ = ("handler", "attempts", "status", "call")

    def __init__(self, handler: SearcherHandler):
        self.handler = handler
        self.attempts = 0
        self.status: Optional[str] = None  # the last call's DONE, INCOMPLETE, FAILED or TIMED_OUT
        self.call: Optional[Call] = None


class Lookup:
    """One lookup in flight in this process: every searcher of the service, or (a rerun) only
    the searchers ``record.missing`` names, on top of the hits the others gave before."""

    def __init__(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
                 rerun: Optional[Dict[str, int]] = None):
        self.record = record
        self.channel = channel
        self.file = file
        self.rerun = rerun  # searcher label -> calls made in earlier runs; None runs them all
        self.event = ThreatServiceLookupEvent(request_id=record.id, name=record.artifact["type"],
                                              artifact=record.artifact, channel=channel, file=file)
        self.jobs: List[_Job] = []
        self.running: set = set()
        self.retrying: set = set()
        self.hits: Dict[_Job, List[dict]] = {}
        self.waiters: List[tuple] = []
        self.deadline_timer: Optional[TimerHandle] = None
        self.final: Optional[LookupRecord] = None  # set once it has ended

    @property
    def id(self) -> str:
        return self.record.id

    def merged_hits(self) -> List[dict]:
        base = self.record.hits if self.rerun is not None else []
        return base + [hit for job in self.jobs for hit in self.hits.get(job, ())]

    def snapshot(self, complete: bool, backoff_secs: float = 0.0) -> LookupRecord:
        """The record to store: pending with the hits so far, or ended, whole or incomplete."""
        if not complete:
            return replace(self.record, hits=self.merged_hits(), complete=False, missing={},
                           partial_hits=[])
        done = [job for job in self.jobs if job.status == DONE]
        missing = {job.handler.label: job.attempts for job in self.jobs if job.status != DONE}
        hits = (self.record.hits if self.rerun is not None else []) + [
            hit for job in done for hit in self.hits.get(job, ())]
        partial = [hit for job in self.jobs if job.status != DONE for hit in self.hits.get(job, ())]
        return replace(self.record, hits=hits, complete=True, missing=missing, partial_hits=partial,
                       rerun_at=time.time() + backoff_secs if missing else 0.0)


class Dispatcher(BaseComponent):
    """Starts lookups, runs searchers in their bulkheads, and tells waiters when a lookup is done."""

    def __init__(self, store: Store, scheduler: Scheduler, *, limits: SearcherLimits = SearcherLimits(),
                 limit_overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                 max_retries: int = 60, incomplete_retry_secs: float = 5,
                 lookup_timeout_secs: float = 300, lease_secs: float = 30,
                 channel: Optional[str] = None):
        super().__init__(channel=channel or f"rc_cts.dispatch.{id(self):x}")
        self.store = store
        self.scheduler = scheduler
        self.lease_secs = lease_secs
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.unsaved: Dict[str, LookupRecord] = {}  # complete results the store could not take yet
        self.max_retries = max_retries
        self.incomplete_retry_secs = incomplete_retry_secs
        self.lookup_timeout_secs = lookup_timeout_secs
        self.async_loop = AsyncLoop()
        self.registry = SearcherRegistry(self._make_bulkhead, limits, limit_overrides)
        self.active: Dict[str, Lookup] = {}

    def _make_bulkhead(self, label: str, limits: SearcherLimits) -> Bulkhead:
        return Bulkhead(label, limits, self.scheduler, self._post, self.async_loop.loop)

    def _post(self, fn: Callable[[], None]) -> None:
        """From any thread: run ``fn`` in the loop thread."""
        self.fire(run_in_loop(fn), self.channel)

    @handler("run_in_loop")
    def _on_run_in_loop(self, fn: Callable[[], None]) -> None:
        fn()

    # -- searchers joining the tree ----------------------------------------------------------
    @handler("registered", channel="*", priority=1e9)
    def _on_registered(self, event, component, manager) -> None:
        """Adopt searchers as they join, before circuits dispatches any other event to them.

        circuits picks an event's handlers before the first one runs, so a catch-all handler
        adopted just now may be in this very event's list: the event is then stopped and fired
        again, its list now without the catch-all, which thus sees lookups only."""
        adopted = self.registry.adopt_tree(self.root)
        if any(h.types is None and h.legacy_name is None for s in adopted for h in s.handlers):
            event.stop()
            self.fire(registered(component, manager), *event.channels)

    def has_searchers(self, channel: str) -> bool:
        return self.registry.has_service(channel)

    def wants_files(self, channel: str) -> bool:
        """Whether a searcher on the channel analyses files (``upload_file = True``)."""
        return self.registry.wants_files(channel)

    # -- lookups -----------------------------------------------------------------------------
    def start(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
              resumed: bool = False, rerun: Optional[Dict[str, int]] = None) -> Optional[Lookup]:
        """Run the lookup here: a new one, or one whose owner stopped renewing its lease (a
        replica that died, or this process before a restart); or join the one running here.
        None if another process holds the lease: it runs the lookup and writes the result.
        Raises StoreError if the store cannot be reached."""
        lookup = self.active.get(record.id)
        if lookup is not None:
            if file is not None:
                file.close()
            return lookup
        try:
            if not self.store.lease(record.id, self.owner, self.lease_secs):
                if file is not None:
                    file.close()
                return None
            lookup = Lookup(record, channel, file, rerun)
            self.store.put(lookup.snapshot(complete=False))  # pending: a GET on any replica finds it
        except StoreError:
            if file is not None:
                file.close()
            raise
        self.active[record.id] = lookup
        if resumed:
            LOG.info("resumed lookup %s (%s) that no process was running", record.id,
                     record.artifact.get("type"))
        lookup.deadline_timer = self.scheduler.call_later(self.lookup_timeout_secs,
                                                          self._time_out, lookup)
        for searcher_handler in self.registry.handlers_for(channel, lookup.event.name):
            if rerun is not None and searcher_handler.label not in rerun:
                continue  # answered in full in an earlier run
            job = _Job(searcher_handler)
            if rerun is not None:
                job.attempts = rerun[searcher_handler.label]
            lookup.jobs.append(job)
            self._run(lookup, job)
        if not lookup.jobs:
            LOG.info("no searcher on %s handles %s", service_of(channel), lookup.event.name)
            self._progress(lookup, changed=False)
        return lookup

    def rerun_missing(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
                      new_round: bool) -> Optional[Lookup]:
        """For a request on a lookup that ended incomplete: run its missing searchers again
        once their backoff is over, on top of the others' hits. ``new_round`` (a POST) starts
        their calls and the polls afresh; a GET runs only searchers with calls left
        (``max_retries``). None if nothing runs now: the record is stored with its poll count.
        Raises StoreError."""
        lookup = self.active.get(record.id)
        if lookup is not None:
            if file is not None:
                file.close()
            return lookup
        if new_round:
            record = replace(record, polls=0, missing=dict.fromkeys(record.missing, 0))
        due = {label: calls for label, calls in record.missing.items() if calls <= self.max_retries}
        if not due or time.time() < record.rerun_at:
            if file is not None:
                file.close()
            self.store.put(record)
            return None
        return self.start(replace(record, reruns=record.reruns + 1), channel, file, rerun=due)

    def _run(self, lookup: Lookup, job: _Job) -> None:
        h = job.handler
        worker = call_async_searcher if h.is_async else call_searcher
        work = functools.partial(worker, h.fn, h.label, lookup.event, h.pass_event)
        call = h.searcher.bulkhead.submit(work, h.is_async,
                                          lambda outcome: self._on_call_done(lookup, job, outcome))
        if call is None:  # the searcher's queue is full: the lookup stays pending, offered again
            lookup.retrying.add(job)
            self.scheduler.call_later(DEFER_RETRY_SECS, self._retry, lookup, job)
            return
        job.attempts += 1
        job.call = call
        lookup.running.add(job)

    def _on_call_done(self, lookup: Lookup, job: _Job, outcome: Outcome) -> None:
        if self.active.get(lookup.id) is not lookup or job not in lookup.running:
            return  # the lookup timed out meanwhile
        lookup.running.discard(job)
        job.call = None
        lookup.hits[job] = outcome.hits
        job.status = outcome.status
        if outcome.status == INCOMPLETE:
            if job.attempts <= self.max_retries:
                lookup.retrying.add(job)
                self.scheduler.call_later(self.incomplete_retry_secs, self._retry, lookup, job)
            else:
                LOG.warning("searcher %s still incomplete for %s after %d attempts: giving up "
                            "for this round", job.handler.label, lookup.id, job.attempts)
        self._progress(lookup, changed=bool(outcome.hits))

    def _retry(self, lookup: Lookup, job: _Job) -> None:
        if self.active.get(lookup.id) is lookup and job in lookup.retrying:
            lookup.retrying.discard(job)
            self._run(lookup, job)

    def _progress(self, lookup: Lookup, changed: bool) -> None:
        if not lookup.running and not lookup.retrying:
            self._finish(lookup)
        elif changed:
            try:  # hits found so far, for GETs on other replicas; the final write matters more
                self.store.put(lookup.snapshot(complete=False))
            except StoreError as exc:
                LOG.warning("partial hits of %s not stored: %s", lookup.id, exc)

    def _time_out(self, lookup: Lookup) -> None:
        if self.active.get(lookup.id) is lookup:
            late = sorted({job.handler.label for job in lookup.running | lookup.retrying})
            LOG.warning("lookup %s timed out after %ss without %s: kept incomplete, so that "
                        "later polls and POSTs run it again", lookup.id, self.lookup_timeout_secs,
                        ", ".join(late))
            for job in lookup.running | lookup.retrying:
                if job.call is not None:
                    job.handler.searcher.bulkhead.cancel(job.call)
            self._finish(lookup)

    def _backoff_secs(self, reruns: int) -> float:
        """How long missing searchers wait before they are run again: doubling with each rerun."""
        return self.incomplete_retry_secs * min(2 ** min(reruns, 16), MAX_BACKOFF_FACTOR)

    def _finish(self, lookup: Lookup) -> None:
        self.active.pop(lookup.id, None)
        if lookup.deadline_timer is not None:
            lookup.deadline_timer.cancel()
        record = lookup.snapshot(complete=True, backoff_secs=self._backoff_secs(lookup.record.reruns))
        self._save(record)
        if lookup.file is not None:
            lookup.file.close()
        if record.missing:
            LOG.info("lookup %s %s incomplete: %d hits, none yet from %s", lookup.id,
                     record.artifact["type"], len(record.shown_hits), ", ".join(sorted(record.missing)))
        else:
            LOG.info("lookup %s %s done: %d hits", lookup.id, record.artifact["type"], len(record.hits))
        LOG.debug("lookup %s value %r", lookup.id, str(record.artifact["value"])[:80])
        lookup.final = record
        waiters, lookup.waiters = lookup.waiters, []
        for callback, timer in waiters:
            timer.cancel()
            callback(record)

    def result(self, rid: str) -> Optional[LookupRecord]:
        """The record of a lookup: a result kept here while the store was down, else the
        store's.  Raises StoreError."""
        return self.unsaved.get(rid) or self.store.get(rid)

    def _write(self, record: LookupRecord) -> None:
        self.store.put(record)
        self.store.release(record.id, self.owner)

    def _save(self, record: LookupRecord) -> None:
        """Write a complete result; if the store is down, keep it and offer it again."""
        try:
            self._write(record)
        except StoreError as exc:
            LOG.warning("result of %s kept in memory until the store is back: %s", record.id, exc)
            if not self.unsaved:
                self.scheduler.call_later(SAVE_RETRY_SECS, self._save_unsaved)
            self.unsaved[record.id] = record

    def _save_unsaved(self) -> None:
        for rid, record in list(self.unsaved.items()):
            try:
                self._write(record)
            except StoreError:
                break
            del self.unsaved[rid]
        if self.unsaved:
            self.scheduler.call_later(SAVE_RETRY_SECS, self._save_unsaved)
        else:
            LOG.info("the store is back: every kept result is stored")

    def _renew_leases(self) -> None:
        for rid in list(self.active):
            try:
                if not self.store.lease(rid, self.owner, self.lease_secs):
                    LOG.warning("lease of lookup %s was taken over elsewhere; finishing it here too", rid)
            except StoreError as exc:
                LOG.warning("cannot renew leases: %s", exc)
                return

    def _take_over(self) -> None:
        """Resume pending lookups nobody holds a lease on: those of a replica that died, or
        of this service before a restart."""
        try:
            records = self.store.pending()
        except StoreError as exc:
            LOG.warning("cannot look for abandoned lookups: %s", exc)
            return
        for record in records:
            channel = searcher_channel(*record.service.split("/"))
            if record.id in self.active or not self.has_searchers(channel):
                continue
            try:
                self.start(record, channel, None, resumed=True)
            except StoreError:
                return

    @handler("started", channel="*")
    def _on_started(self, component) -> None:
        if not self.store.resumable:
            return  # nothing outlives this process: no lease to renew, nothing to take over
        self.scheduler.call_every(self.lease_secs / 3, self._renew_leases)
        self.scheduler.call_later(0, self._take_over)
        self.scheduler.call_every(self.lease_secs, self._take_over)

    def wait_elsewhere(self, rid: str, timeout: float,
                       callback: Callable[[Optional[LookupRecord]], None]) -> None:
        """For a lookup another process runs: ``callback(record)`` once the store has it
        complete, or ``callback(None)`` after ``timeout``."""
        deadline = time.monotonic() + timeout

        def poll() -> None:
            try:
                record = self.store.get(rid)
            except StoreError:
                record = None
            if record is not None and record.complete:
                callback(record)
            elif time.monotonic() >= deadline:
                callback(None)
            else:
                self.scheduler.call_later(REMOTE_POLL_SECS, poll)

        poll()

    def wait(self, lookup: Lookup, timeout: float, callback: Callable[[Optional[LookupRecord]], None]) -> None:
        """Call ``callback(record)`` when the lookup completes, or ``callback(None)`` after ``timeout``."""
        if lookup.final is not None:  # it ended as it started (no searcher for the type)
            callback(lookup.final)
            return
        if timeout <= 0:
            callback(None)
            return
        entry: list = []

        def expired() -> None:
            if entry[0] in lookup.waiters:
                lookup.waiters.remove(entry[0])
                callback(None)

        entry.append((callback, self.scheduler.call_later(timeout, expired)))
        lookup.waiters.append(entry[0])

    def pending_hits(self, rid: str) -> List[dict]:
        lookup = self.active.get(rid)
        return lookup.merged_hits() if lookup is not None else []

    @handler("stopped", channel="*")
    def _on_stopped(self, component) -> None:
        for searcher in self.registry.searchers():
            searcher.bulkhead.shutdown()
        self.async_loop.stop()
        for lookup in self.active.values():
            if lookup.file is not None:
                lookup.file.close()  # nothing left behind in upload_dir
