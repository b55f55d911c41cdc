"""Lookups: call each searcher handler the registry has for the artifact, in that
searcher's bulkhead, collect hits, retry incomplete searchers, end whole or incomplete.

Lookups do not travel through circuits' event dispatch: a lookup submits the registered
handlers directly.  A call's end comes back to the loop thread through the scheduler,
where it is merged, so all lookup state is touched by the loop thread only.
The store is reached through ``Results``, never from the loop thread itself.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional

from circuits import BaseComponent, handler

from ..config.settings import Settings
from ..http.files import ArtifactFile, release
from ..hits import searcher_channel, service_of
from ..http.access import describe
from ..scheduler import Scheduler
from ..store import LookupRecord, StoreError
from .async_loop import AsyncLoop
from .bulkhead import Bulkhead, SearcherLimits
from .calls import DEFERRED, DONE, INCOMPLETE, Outcome, call_async_searcher, call_searcher
from .quota import NO_QUOTA, parse_rate_limit
from .registry import SearcherRegistry
from .results import Results
from .state import Job, Lookup, Waiter

LOG = logging.getLogger(__name__)
MAX_BACKOFF_FACTOR = 12   # missing searchers are run again after at most 12 x incomplete_retry_secs
DEFER_RETRY_SECS = 0.5    # a call refused by a full bulkhead queue is offered again this often


class Dispatcher(BaseComponent):
    """Starts lookups, runs searchers in their bulkheads, and tells waiters how they ended."""

    def __init__(self, results: Results, scheduler: Scheduler, settings: Settings):
        super().__init__(channel=f"rc_cts.dispatch.{id(self):x}")
        self.results = results
        self.scheduler = scheduler
        self.max_retries = settings.max_retries
        self.incomplete_retry_secs = settings.incomplete_retry_secs
        self.lookup_timeout_secs = settings.lookup_timeout_secs
        self.async_loop = AsyncLoop()
        self.registry = SearcherRegistry(self._make_bulkhead, settings.searcher_limits,
                                         settings.service_limits)
        self.active: Dict[str, Lookup] = {}
        # For /metrics (rc_cts/metrics.py); changed and read in the loop thread only.
        self.lookups_started = 0      # runs started here: new, resumed, or missing searchers rerun
        self.lookups_whole = 0        # ended with every searcher's answer
        self.lookups_incomplete = 0   # ended with a searcher missing (failed, timed out, incomplete)

    def _make_bulkhead(self, label: str, limits: SearcherLimits, service: str) -> Bulkhead:
        windows = parse_rate_limit(limits.rate_limit)
        quota = self.results.gate.store.make_quota(f"{service}:{label}", windows) if windows else NO_QUOTA
        return Bulkhead(label, limits, self.scheduler, self.scheduler.call_soon_threadsafe,
                        self.async_loop.loop, quota)

    def has_searchers(self, channel: str) -> bool:
        return self.registry.has_service(channel)

    def wants_files(self, channel: str) -> bool:
        """Whether a searcher on the channel analyses files (``upload_file = True``)."""
        return self.registry.wants_files(channel)

    # -- starting ----------------------------------------------------------------------------
    def start(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
              resumed: bool = False, rerun: Optional[Dict[str, int]] = None) -> Lookup:
        """Run the lookup here: a new one, or one whose owner stopped renewing its lease (a
        replica that died, or this process before a restart); or join the one running here.
        Its searchers start once the store has its lease; if another process holds the lease
        the waiters are told when that process has stored the result.  The lookup owns
        ``file`` and closes it when it ends; joining, or an error here, closes it at once."""
        running = self.active.get(record.id)
        if running is not None:
            release(file)
            return running
        try:
            lookup = Lookup(record, channel, file, rerun)
            self.active[record.id] = lookup
            self.lookups_started += 1
            self.results.claim(lambda: lookup.snapshot(complete=False),
                               lambda ours, error: self._claimed(lookup, ours, error, resumed))
        except BaseException:
            self.active.pop(record.id, None)  # absent before: not left for later requests to join
            release(file)
            raise
        return lookup

    def _claimed(self, lookup: Lookup, ours: bool, error: Optional[StoreError], resumed: bool) -> None:
        if not ours:
            del self.active[lookup.id]
            release(lookup.file)
            if error is not None:
                LOG.error("store unavailable: %s", error)
                lookup.final = error
                lookup.tell(error)
            else:  # another replica runs it: its waiters read the store until it has ended
                lookup.elsewhere = True
                for waiter, timer in lookup.waiters:
                    timer.cancel()
                    self.results.wait_elsewhere(lookup.id, max(0.0, timer.when - time.monotonic()), waiter)
                lookup.waiters = []
            return
        if resumed:
            LOG.info("resumed lookup %s (%s) that no process was running", lookup.id, lookup.event.name)
        lookup.deadline_timer = self.scheduler.call_later(self.lookup_timeout_secs, self._time_out, lookup)
        file_gone = lookup.file is None and lookup.record.file_sha256 is not None
        left: List[str] = []
        for searcher_handler in self.registry.handlers_for(lookup.channel, lookup.event.name):
            if lookup.rerun is not None and searcher_handler.label not in lookup.rerun:
                continue  # answered in full in an earlier run
            job = Job(searcher_handler, lookup.rerun[searcher_handler.label] if lookup.rerun else 0)
            lookup.jobs.append(job)
            if file_gone and searcher_handler.searcher.wants_files:
                left.append(searcher_handler.label)  # never run: it stays missing
                continue
            self._run(lookup, job)
        if left:
            LOG.warning("lookup %s: its uploaded file is gone (it stays with the process that received "
                        "it): %s not run without it, left missing until a POST brings the file",
                        lookup.id, ", ".join(left))
        lookup.starting = False  # only now: a call that ends at once must not end the lookup early
        if not lookup.jobs:  # its access line says: whole, no hits
            LOG.debug("no searcher on %s handles %s", service_of(lookup.channel), lookup.event.name)
        self._progress(lookup, changed=False)

    def rerun_missing(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
                      new_round: bool) -> Optional[Lookup]:
        """For a request on a lookup that ended incomplete: run its missing searchers again
        once their backoff is over, on top of the others' hits. ``new_round`` (a POST) starts
        their calls and the polls afresh; a GET runs only searchers with calls left
        (``max_retries``). None if nothing runs now: the record is stored with its poll count."""
        lookup = self.active.get(record.id)
        if lookup is not None:
            release(file)
            return lookup
        if new_round:
            record = replace(record, polls=0, missing=dict.fromkeys(record.missing, 0))
        due = {label: calls for label, calls in record.missing.items() if calls <= self.max_retries}
        if not due or time.time() < record.rerun_at:
            release(file)
            self.results.note(record)
            return None
        return self.start(replace(record, reruns=record.reruns + 1), channel, file, rerun=due)

    # -- running -----------------------------------------------------------------------------
    def _run(self, lookup: Lookup, job: Job) -> None:
        h = job.handler
        worker = call_async_searcher if h.is_async else call_searcher
        work = functools.partial(worker, h.fn, h.label, lookup.event, h.pass_event)
        job.attempts += 1
        lookup.running.add(job)  # before submitting: a non-blocking searcher answers within it
        call = h.searcher.bulkhead.submit(work, h.is_async,
                                          lambda outcome: self._on_call_done(lookup, job, outcome))
        if call is None:  # the searcher's queue is full: the lookup stays pending, offered again
            job.attempts -= 1
            lookup.running.discard(job)
            lookup.retrying.add(job)
            self.scheduler.call_later(DEFER_RETRY_SECS, self._retry, lookup, job)
        elif call.state != "ended":
            job.call = call

    def _on_call_done(self, lookup: Lookup, job: Job, outcome: Outcome) -> None:
        if self.active.get(lookup.id) is not lookup or job not in lookup.running:
            return  # the lookup timed out meanwhile
        lookup.running.discard(job)
        job.call = None
        if outcome.status == DEFERRED:  # its quota is spent: it waits in the bulkhead's queue
            job.attempts -= 1
            self._run(lookup, job)
            return
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

    def _retry(self, lookup: Lookup, job: Job) -> None:
        if self.active.get(lookup.id) is lookup and job in lookup.retrying:
            lookup.retrying.discard(job)
            self._run(lookup, job)

    def _progress(self, lookup: Lookup, changed: bool) -> None:
        if lookup.settled:
            self._finish(lookup)
        elif changed:  # hits found so far, for GETs on other replicas; the final write matters more
            self.results.note(lookup.snapshot(complete=False), shared_only=True)

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
        del self.active[lookup.id]
        release(lookup.file)  # first: nothing below may keep it on disk
        if lookup.deadline_timer is not None:
            lookup.deadline_timer.cancel()
        record = lookup.snapshot(complete=True, backoff_secs=self._backoff_secs(lookup.record.reruns))
        self.results.save(record)
        if record.missing:
            self.lookups_incomplete += 1
        else:
            self.lookups_whole += 1
        if LOG.isEnabledFor(logging.DEBUG):  # at INFO, the access line of each request says how it ended
            LOG.debug("lookup %s %s ended: %s; value %r", lookup.id, record.artifact["type"],
                      describe(record), str(record.artifact["value"])[:80])
        lookup.final = record
        lookup.tell(record)

    # -- waiting -----------------------------------------------------------------------------
    def wait(self, lookup: Lookup, timeout: float, waiter: Waiter) -> None:
        """``waiter(record)`` when the lookup ends, ``waiter(None)`` after ``timeout``, or
        ``waiter(StoreError)`` if the store kept it from starting."""
        if lookup.final is not None:  # it ended as it started (no searcher, or no store)
            waiter(lookup.final)
            return
        if lookup.elsewhere:
            self.results.wait_elsewhere(lookup.id, timeout, waiter)
            return
        entry: List[Any] = []

        def expired() -> None:
            if entry[0] in lookup.waiters:
                lookup.waiters.remove(entry[0])
                waiter(None)

        entry.append((waiter, self.scheduler.call_later(timeout, expired)))
        lookup.waiters.append(entry[0])

    def pending_searchers(self, rid: str) -> List[str]:
        """The searchers of a lookup running here that have not answered in full yet."""
        lookup = self.active.get(rid)
        jobs = list(lookup.jobs) if lookup is not None else []  # a copy: rc-cts lookup reads it from its thread
        return sorted({job.handler.label for job in jobs if job.status != DONE})

    def pending_hits(self, rid: str) -> List[dict]:
        lookup = self.active.get(rid)
        return lookup.merged_hits() if lookup is not None else []

    # -- replicas and restarts ---------------------------------------------------------------
    def _take_over(self) -> None:
        """Resume pending lookups nobody holds a lease on: those of a replica that died, or
        of this service before a restart."""
        def resume(records) -> None:
            for record in records:
                channel = searcher_channel(*record.service.split("/"))
                if record.id not in self.active and self.has_searchers(channel):
                    self.start(record, channel, None, resumed=True)
        self.results.pending(resume)

    @handler("started", channel="*")
    def _on_started(self, component) -> None:
        if not self.results.resumable:
            return  # nothing outlives this process: no lease to renew, nothing to take over
        lease_secs = self.results.lease_secs
        self.scheduler.call_every(lease_secs / 3, lambda: self.results.renew(
            [rid for rid, lookup in self.active.items() if not lookup.starting]))
        self.scheduler.call_later(0, self._take_over)
        self.scheduler.call_every(lease_secs, self._take_over)

    @handler("stopped", channel="*")
    def _on_stopped(self, component) -> None:
        for searcher in self.registry.searchers():
            searcher.bulkhead.shutdown()
        self.async_loop.stop()
        for lookup in self.active.values():
            release(lookup.file)  # nothing left behind in upload_dir
