"""Lookups: call each searcher handler the registry has for the artifact, in that
searcher's bulkhead, collect hits, retry incomplete searchers, end whole or incomplete.

Lookups do not travel through circuits' event dispatch: a lookup submits the registered
handlers directly.  A call's end comes back to the loop thread through the scheduler,
where it is merged, so all lookup state is touched by the loop thread only.
The store is reached through ``Results``, never from the loop thread itself.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional, Tuple

from circuits import BaseComponent, handler

from ..config.settings import Settings
from ..events import ThreatServiceLookupEvent
from ..http.files import ArtifactFile, release
from ..hits import searcher_channel, service_of
from ..http.access import describe
from ..scheduler import Scheduler
from ..store import LookupRecord, StoreError
from ..store.answers import AnswerKey, CachedAnswer, artifact_digest
from .async_loop import AsyncLoop
from .bulkhead import Bulkhead
from .limits import SearcherLimits
from .calls import DEFERRED, DONE, INCOMPLETE, Outcome, call_async_searcher, call_searcher
from .quota import NO_QUOTA, parse_rate_limit
from .registry import Searcher, SearcherHandler, SearcherRegistry
from .results import Answers, Results
from .state import Job, Lookup, Waiter

LOG = logging.getLogger(__name__)
MAX_BACKOFF_FACTOR = 12   # missing searchers are run again after at most 12 x incomplete_retry_secs
DEFER_RETRY_SECS = 0.5    # a call refused by a full bulkhead queue is offered again this often
CLOSE_SECS = 2.0          # what a searcher's aclose/close may take at shutdown
PROVENANCE_PROP = "rc-cts cache"  # the prop cache_provenance adds to hits answered from the cache
Keyed = List[Tuple[SearcherHandler, AnswerKey]]  # each handler for an artifact, and its answer's key


class Dispatcher(BaseComponent):
    """Starts lookups, runs searchers in their bulkheads, and tells waiters how they ended."""

    def __init__(self, results: Results, scheduler: Scheduler, settings: Settings):
        super().__init__(channel=f"rc_cts.dispatch.{id(self):x}")
        self.results = results
        self.scheduler = scheduler
        self.max_retries = settings.max_retries
        self.incomplete_retry_secs = settings.incomplete_retry_secs
        self.lookup_timeout_secs = settings.lookup_timeout_secs
        self.cache_provenance = settings.cache_provenance
        self.async_loop = AsyncLoop()
        self.refreshing: set = set()  # answer keys being refreshed in the background (stale answers served)
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
              resumed: bool = False, rerun: Optional[Dict[str, int]] = None,
              answers: Optional[Answers] = None, keys: Optional[Keyed] = None) -> Lookup:
        """Run the lookup here: a new one, or one whose owner stopped renewing its lease (a
        replica that died, or this process before a restart); or join the one running here.
        Its searchers start once the store has its lease; if another process holds the lease
        the waiters are told when that process has stored the result.  The lookup owns
        ``file`` and closes it when it ends; joining, or an error here, closes it at once.
        ``answers``: the searchers' cached answers, read with the record under ``keys``; those
        still usable are not called."""
        running = self.active.get(record.id)
        if running is not None:
            release(file)
            return running
        try:
            lookup = Lookup(record, channel, file, rerun, answers)
            lookup.keys = keys
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
        keys = lookup.keys
        if keys is None:
            keys = self.answer_keys(lookup.channel, lookup.record.artifact, lookup.record.file_sha256)
        for searcher_handler, key in keys:
            if lookup.rerun is not None and searcher_handler.label not in lookup.rerun:
                continue  # answered in full in an earlier run
            job = Job(searcher_handler, key, lookup.rerun[searcher_handler.label] if lookup.rerun else 0)
            lookup.jobs.append(job)
            if self._answer_from_cache(lookup, job):
                continue
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

    def rerun_missing(self, record: LookupRecord, channel: str) -> Optional[Lookup]:
        """For a GET on a lookup that ended incomplete: run its missing searchers with calls
        left (``max_retries``) again once their backoff is over, on top of the others' hits.
        None if nothing runs now: the record is stored with its poll count.  (A POST starts
        a new lookup instead, which the cached answers of the others keep cheap.)"""
        lookup = self.active.get(record.id)
        if lookup is not None:
            return lookup
        due = {label: calls for label, calls in record.missing.items() if calls <= self.max_retries}
        if not due or time.time() < record.rerun_at:
            self.results.note(record)
            return None
        return self.start(replace(record, reruns=record.reruns + 1), channel, None, rerun=due)

    # -- the per-searcher answer cache ----------------------------------------------------------
    def answer_keys(self, channel: str, artifact: Dict[str, Any], file_sha256: Optional[str]) -> Keyed:
        """Each handler that answers the artifact on the channel, and where its answer is cached."""
        handlers = self.registry.handlers_for(channel, artifact["type"])
        if not handlers:
            return []
        digest = artifact_digest(artifact["type"], artifact["value"], file_sha256)
        return [(h, AnswerKey(service_of(h.channel), digest, f"{h.label}@{h.searcher.fingerprint}"))
                for h in handlers]

    def cached_hits(self, keys: Keyed, artifact: Dict[str, Any], rid: str,
                    answers: Answers) -> Optional[List[dict]]:
        """For a POST (``keys`` from ``answer_keys``): the hits, if every searcher has a usable
        cached answer (stale ones are refreshed in the background); else None, and the POST
        starts a lookup."""
        found = []
        for handler, key in keys:
            state = self._usable(handler.searcher, answers.get(key))
            if state is None:
                return None
            found.append((handler, key, state))
        hits: List[dict] = []
        for handler, key, state in found:
            cached = answers[key]
            self._count_cached(handler, key, state, artifact, rid)
            hits += self._shown(cached)
        return hits if keys else None

    def _answer_from_cache(self, lookup: Lookup, job: Job) -> bool:
        """Whether the job is answered by its cached answer (then it is not called)."""
        if lookup.answers is None:  # a rerun, or a resumed lookup: nothing was read for it
            return False
        cached = lookup.answers.get(job.key)
        state = self._usable(job.handler.searcher, cached)
        if state is None or cached is None:
            job.handler.searcher.bulkhead.stats.cache_misses += 1
            return False
        job.status = DONE
        job.cached = cached
        lookup.hits[job] = self._shown(cached)
        self._count_cached(job.handler, job.key, state, lookup.record.artifact, lookup.id)
        return True

    def _usable(self, searcher: Searcher, cached: Optional[CachedAnswer]) -> Optional[str]:
        """"fresh", "stale" (servable while refreshed), or None (call the searcher).  The
        searcher's TTLs as they are now bound what an entry stored under longer ones says."""
        if cached is None:
            return None
        limits = searcher.limits
        ttl = min(cached.fresh_secs, limits.ttl_for(bool(cached.hits)))
        age = cached.age()
        if age < ttl:
            return "fresh"
        if age < ttl + min(cached.stale_secs, limits.stale_secs) and not searcher.wants_files:
            return "stale"
        return None

    def _count_cached(self, handler: SearcherHandler, key: AnswerKey, state: str,
                      artifact: Dict[str, Any], rid: str) -> None:
        stats = handler.searcher.bulkhead.stats
        if state == "fresh":
            stats.cache_hits += 1
        else:
            stats.cache_stale += 1
            self._refresh(handler, key, artifact, rid)

    def _shown(self, cached: CachedAnswer) -> List[dict]:
        """The cached hits; with cache_provenance, each says it came from the cache, and its age."""
        if not self.cache_provenance:
            return cached.hits
        note = {"type": "string", "name": PROVENANCE_PROP, "value": f"cached, age {int(cached.age())} s"}
        return [{**hit, "props": [*hit.get("props", []), note]} for hit in cached.hits]

    def _refresh(self, handler: SearcherHandler, key: AnswerKey, artifact: Dict[str, Any], rid: str) -> None:
        """Call the searcher for a stale answer that was served, and cache what it gives."""
        if key in self.refreshing:
            return
        self.refreshing.add(key)
        event = ThreatServiceLookupEvent(request_id=rid, name=artifact["type"], artifact=artifact,
                                         channel=handler.channel, file=None)
        worker = call_async_searcher if handler.is_async else call_searcher
        work = functools.partial(worker, handler.fn, handler.label, event, handler.pass_event)

        def done(outcome: Outcome) -> None:
            self.refreshing.discard(key)
            entry = self._entry(handler.searcher, outcome)
            if entry is not None:  # else (failed, deferred...) the stale answer serves on
                self.results.put_answers([(key, entry)])
        if handler.searcher.bulkhead.submit(work, handler.is_async, done) is None:
            self.refreshing.discard(key)  # its queue is full: the next stale read tries again

    @staticmethod
    def _entry(searcher: Searcher, outcome: Outcome) -> Optional[CachedAnswer]:
        """What to cache of a call's outcome: a whole answer, with its TTL; None for the others."""
        if outcome.status != DONE:
            return None
        ttl = searcher.limits.ttl_for(bool(outcome.hits))
        if ttl <= 0:
            return None
        return CachedAnswer(outcome.hits, time.time(), ttl, searcher.limits.stale_secs)

    def retry_secs(self, rid: str, base: float) -> float:
        """A 303's retry_secs: ``base``, or if every searcher the lookup waits for waits for its
        quota, the time until the first of those quotas lets a call through."""
        lookup = self.active.get(rid)
        if lookup is None:
            return base
        waiting = [job for job in lookup.jobs if job.status != DONE and job in lookup.running | lookup.retrying]
        if not waiting or not all(job.waits_for_quota for job in waiting):
            return base
        return max(base, math.ceil(min(job.handler.searcher.bulkhead.paused_for() for job in waiting)))

    # -- running -----------------------------------------------------------------------------
    def _run(self, lookup: Lookup, job: Job) -> None:
        h = job.handler
        worker = call_async_searcher if h.is_async else call_searcher
        work = functools.partial(worker, h.fn, h.label, lookup.event, h.pass_event)
        job.attempts += 1
        lookup.running.add(job)  # before submitting: a non-blocking searcher answers within it
        call = h.searcher.bulkhead.submit(work, h.is_async,
                                          lambda outcome: self._on_call_done(lookup, job, outcome))
        if call is None and h.searcher.bulkhead.paused_for() > 0:
            # Its quota is spent and max_queue lookups wait for it already: this one ends
            # incomplete now (asked again on later polls), rather than wait too, unbounded.
            job.attempts -= 1
            lookup.running.discard(job)
            job.status = DEFERRED
            self._progress(lookup, changed=False)
        elif call is None:  # the searcher's queue is full: the lookup stays pending, offered again
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
        """The lookup's deadline: searchers still running are given up (it ends incomplete),
        but one waiting for its quota waits on, and gets lookup_timeout_secs again from when
        its quota frees: the platform is told when to come back."""
        if self.active.get(lookup.id) is not lookup:
            return
        unfinished = lookup.running | lookup.retrying
        late = [job for job in unfinished if not job.waits_for_quota]
        if late:
            LOG.warning("lookup %s timed out after %ss without %s: kept incomplete, so that "
                        "later polls and POSTs run it again", lookup.id, self.lookup_timeout_secs,
                        ", ".join(sorted({job.handler.label for job in late})))
        for job in late:
            if job.call is not None:
                job.handler.searcher.bulkhead.cancel(job.call)
            lookup.running.discard(job)
            lookup.retrying.discard(job)
        waiting = unfinished.difference(late)
        if waiting:  # a new deadline, counted from when the first quota frees
            wait = min(job.handler.searcher.bulkhead.paused_for() for job in waiting)
            lookup.deadline_timer = self.scheduler.call_later(wait + self.lookup_timeout_secs,
                                                              self._time_out, lookup)
        else:
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
        answers = [(job.key, entry) for job in lookup.jobs if job.cached is None and job.status == DONE
                   for entry in [self._entry(job.handler.searcher, Outcome(DONE, lookup.hits.get(job, [])))]
                   if entry is not None]
        self.results.save(record, answers)
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

    def _close_searchers(self) -> None:
        """Searchers release what they hold (an HTTP client's connections): ``async def aclose``
        on the loop their calls ran on, or ``def close``, each given CLOSE_SECS."""
        loop = self.async_loop.started()
        for searcher in self.registry.searchers():
            component = searcher.component
            try:
                aclose = getattr(component, "aclose", None)
                if callable(aclose) and loop is not None:
                    asyncio.run_coroutine_threadsafe(aclose(), loop).result(CLOSE_SECS)
                elif callable(getattr(component, "close", None)):
                    component.close()
            except Exception as exc:  # one searcher's failure to close does not keep the others open
                LOG.warning("searcher %s did not close cleanly: %s", searcher.name, type(exc).__name__)

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
        self._close_searchers()
        self.async_loop.stop()
        for lookup in self.active.values():
            release(lookup.file)  # nothing left behind in upload_dir
