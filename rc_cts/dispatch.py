"""Lookups: fire the lookup event on the searcher channel, run each searcher handler
in a bounded thread pool, collect hits, retry incomplete searchers, write the store.

circuits runs every handler in its one loop thread, so a searcher that calls a
web API would freeze the service.  When a searcher component joins the tree,
its handlers on the searcher channel are replaced in circuits' handler table by
``PooledHandler`` wrappers: circuits still selects them for the event fired on
the channel, and the wrapper hands the call to the pool.  The pool's done
callback fires an event back into the loop (about 0.2 ms), where the result is
merged, so all lookup state is touched by the loop thread only.
"""
from __future__ import annotations

import inspect
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional

from circuits import BaseComponent, Event, handler

from .artifacts import LEGACY_PREFIX, is_artifact_type_name, legacy_method_name
from .events import ThreatServiceLookupEvent
from .files import ArtifactFile
from .hits import SEARCHER_CHANNEL_PREFIX, searcher_channel
from .scheduler import Scheduler, TimerHandle
from .searcher_calls import DONE, FAILED, INCOMPLETE, Outcome, call_searcher
from .store import LookupRecord, Store, StoreError

LOG = logging.getLogger(__name__)
REMOTE_POLL_SECS = 0.05   # how often a request waiting on another replica's lookup reads the store
SAVE_RETRY_SECS = 1.0     # how often results the store could not take are offered again
MAX_BACKOFF_FACTOR = 12   # missing searchers are run again after at most 12 x incomplete_retry_secs


def is_searcher_channel(channel: Any) -> bool:
    return isinstance(channel, str) and channel.startswith(SEARCHER_CHANNEL_PREFIX)


class searcher_done(Event):
    """A pooled searcher call ended (fired from a worker thread)."""


class lookup_dispatched(Event):
    """Every handler of a lookup event has been called (fired right after it, so it runs after)."""


class PooledHandler:
    """Stands in circuits' handler table for one searcher handler.

    For lookup events it submits the real handler to the pool.  A named handler
    still gets any other event on its channel inline, as before; a catch-all
    handler (``@handler()``) gets the lookup events only.
    """

    handler = True
    event = True
    override = False

    def __init__(self, dispatcher: "Dispatcher", fn: Callable, names, channel: str,
                 priority: float, pass_event: bool, legacy_name: Optional[str] = None):
        self.dispatcher = dispatcher
        self.fn = fn
        self.names = names
        self.channel = channel
        self.priority = priority
        self.pass_event = pass_event
        self.legacy_name = legacy_name  # for `_lookup_net_uri` style methods
        owner = getattr(fn, "__self__", None)
        self.__name__ = getattr(fn, "__name__", "handler")
        self.label = f"{type(owner).__name__}.{self.__name__}" if owner else self.__name__

    def __call__(self, event, *args, **kwargs):
        if isinstance(event, ThreatServiceLookupEvent):
            if self.legacy_name is None or self.legacy_name == legacy_method_name(event.name):
                self.dispatcher.submit(event, self)
            return None
        if self.names and self.legacy_name is None:
            return self.fn(event, *args, **kwargs) if self.pass_event else self.fn(*args, **kwargs)
        return None

    def __repr__(self) -> str:
        return f"<PooledHandler {self.label} on {self.channel}>"


class _Job:
    __slots__ = ("handler", "event", "attempts", "order", "status")

    def __init__(self, handler: PooledHandler, event: ThreatServiceLookupEvent, order: int):
        self.handler = handler
        self.event = event
        self.attempts = 0
        self.order = order
        self.status: Optional[str] = None  # the last call's DONE, INCOMPLETE or FAILED


class Lookup:
    """One lookup in flight in this process: every searcher of the service, or (a rerun) only
    the searchers ``record.missing`` names, on top of the hits the others gave before."""

    def __init__(self, record: LookupRecord, channel: str, file: Optional[ArtifactFile],
                 rerun: Optional[Dict[str, int]] = None):
        self.record = record
        self.channel = channel
        self.file = file
        self.rerun = rerun  # searcher label -> calls made in earlier runs; None runs them all
        self.event: Optional[ThreatServiceLookupEvent] = None
        self.jobs: List[_Job] = []
        self.running: set = set()
        self.retrying: set = set()
        self.hits: Dict[_Job, List[dict]] = {}
        self.dispatched = False
        self.waiters: List[tuple] = []
        self.deadline_timer: Optional[TimerHandle] = None

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
    """Starts lookups, runs searchers in the pool, and tells waiters when a lookup is done."""

    def __init__(self, store: Store, scheduler: Scheduler, *, workers: int = 32,
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
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rc-cts-searcher")
        self.active: Dict[str, Lookup] = {}
        self.channels: Dict[str, List[PooledHandler]] = {}  # searcher channel -> its handlers
        self.file_channels: set = set()  # channels with a searcher that declares upload_file = True
        self._wrapped: Dict[Any, PooledHandler] = {}

    # -- searchers joining the tree ----------------------------------------------------------
    @handler(channel="*", priority=1e9)
    def _adopt_new_searchers(self, event, *args, **kwargs) -> None:
        """Runs first for every event.  circuits clears its handler cache whenever a component
        joins the tree, so a near-empty cache means something may have joined: adopt it
        before this very event (a `registered`, a `generate_events`...) can reach a raw
        catch-all handler.  Otherwise this costs one ``len``."""
        if len(self.root._cache) <= 1:
            self.adopt(self.root)

    def adopt(self, component: BaseComponent) -> None:
        """Route the searcher handlers of ``component`` and its children through the pool."""
        replaced: Dict[Any, PooledHandler] = {}
        for comp in _walk(component):
            if getattr(comp, "_rc_cts_adopted_by", None) is not self:
                comp._rc_cts_adopted_by = self
                self._adopt_one(comp, replaced)
        if replaced:
            root = self.root
            # The event being dispatched now (a searcher's own `registered`) has its handler
            # list already; swap in place so not even that event reaches a raw catch-all.
            for handlers in root._cache.values():
                for i, h in enumerate(handlers):
                    if h in replaced:
                        handlers[i] = replaced[h]
            root._cache_needs_refresh = True

    def _adopt_one(self, comp: BaseComponent, replaced: Dict[Any, PooledHandler]) -> None:
        if getattr(comp, "upload_file", False) is True and is_searcher_channel(getattr(comp, "channel", None)):
            self.file_channels.add(comp.channel)
        for methods in list(comp._handlers.values()):
            for method in list(methods):
                channel = method.channel if method.channel is not None else getattr(comp, "channel", None)
                if isinstance(method, PooledHandler) or not is_searcher_channel(channel):
                    continue
                wrapper = replaced.get(method)  # one wrapper for a handler of several names
                if wrapper is None:
                    wrapper = PooledHandler(self, method, method.names, channel, method.priority,
                                            bool(getattr(method, "event", False)))
                    replaced[method] = wrapper
                    self._add_channel_handler(wrapper)
                methods.discard(method)
                methods.add(wrapper)
        if is_searcher_channel(getattr(comp, "channel", None)):
            for name, member in inspect.getmembers(type(comp), callable):
                if name.startswith(LEGACY_PREFIX) and not getattr(member, "handler", False):
                    wrapper = PooledHandler(self, getattr(comp, name), (), comp.channel, 0,
                                            True, legacy_name=name)
                    comp._handlers.setdefault("*", set()).add(wrapper)
                    replaced[wrapper] = wrapper
                    self._add_channel_handler(wrapper)

    def _add_channel_handler(self, wrapper: PooledHandler) -> None:
        siblings = self.channels.setdefault(wrapper.channel, [])
        same = sum(1 for other in siblings if other.label.split("#")[0] == wrapper.label)
        if same:  # two instances of one class on a service: labels tell their answers apart
            wrapper.label = f"{wrapper.label}#{same + 1}"
        siblings.append(wrapper)
        types = [n for n in wrapper.names if is_artifact_type_name(n)]
        if wrapper.names and not types:
            return  # an ordinary handler (e.g. ResilientComponent's `reload`): not a lookup one
        LOG.info("searcher %s on channel %s for %s", wrapper.label, wrapper.channel,
                 ", ".join(types) or (wrapper.legacy_name and wrapper.legacy_name[len(LEGACY_PREFIX):])
                 or "every artifact type")

    def has_searchers(self, channel: str) -> bool:
        return channel in self.channels

    def wants_files(self, channel: str) -> bool:
        """Whether a searcher on the channel analyses files (``upload_file = True``)."""
        return channel in self.file_channels

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
        lookup.event = ThreatServiceLookupEvent(request_id=record.id, name=record.artifact["type"],
                                                artifact=record.artifact, channel=channel,
                                                file=file)
        self.fire(lookup.event, channel)
        self.fire(lookup_dispatched(record.id), self.channel)
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

    def submit(self, event: ThreatServiceLookupEvent, wrapper: PooledHandler) -> None:
        """Called by a PooledHandler, in the loop thread, while circuits dispatches ``event``."""
        lookup = self.active.get(event.request_id)
        if lookup is None or lookup.event is not event:
            return  # fired by someone else: not ours to run
        if lookup.rerun is not None and wrapper.label not in lookup.rerun:
            return  # answered in full in an earlier run
        job = _Job(wrapper, event, len(lookup.jobs))
        if lookup.rerun is not None:
            job.attempts = lookup.rerun[wrapper.label]
        lookup.jobs.append(job)
        self._run(lookup, job)

    def _run(self, lookup: Lookup, job: _Job) -> None:
        job.attempts += 1
        lookup.running.add(job)
        future = self.pool.submit(call_searcher, job.handler.fn, job.handler.label, job.event,
                                  job.handler.pass_event)
        future.add_done_callback(lambda f, rid=lookup.id, job=job: self._on_future_done(f, rid, job))

    def _on_future_done(self, future, rid: str, job: _Job) -> None:
        """In the worker thread: hand the outcome to the loop (call_searcher catches Exception;
        a cancelled call, at shutdown, or a BaseException still ends the job)."""
        if future.cancelled():
            return
        outcome = future.result() if future.exception() is None else Outcome(FAILED)
        self.fire(searcher_done(rid, job, outcome), self.channel)

    @handler("lookup_dispatched")
    def _on_dispatched(self, rid: str) -> None:
        lookup = self.active.get(rid)
        if lookup is not None:
            lookup.dispatched = True
            if not lookup.jobs:
                LOG.info("no searcher on %s handles %s", lookup.channel, lookup.record.artifact["type"])
            self._progress(lookup, changed=False)

    @handler("searcher_done")
    def _on_searcher_done(self, rid: str, job: _Job, outcome: Outcome) -> None:
        lookup = self.active.get(rid)
        if lookup is None or job not in lookup.running:
            return  # the lookup timed out meanwhile
        lookup.running.discard(job)
        lookup.hits[job] = outcome.hits
        job.status = outcome.status
        if outcome.status == INCOMPLETE:
            if job.attempts <= self.max_retries:
                lookup.retrying.add(job)
                self.scheduler.call_later(self.incomplete_retry_secs, self._retry, lookup, job)
            else:
                LOG.warning("searcher %s still incomplete for %s after %d attempts: giving up "
                            "for this round", job.handler.label, rid, job.attempts)
        self._progress(lookup, changed=bool(outcome.hits))

    def _retry(self, lookup: Lookup, job: _Job) -> None:
        if self.active.get(lookup.id) is lookup and job in lookup.retrying:
            lookup.retrying.discard(job)
            self._run(lookup, job)

    def _progress(self, lookup: Lookup, changed: bool) -> None:
        if lookup.dispatched and not lookup.running and not lookup.retrying:
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
        self.pool.shutdown(wait=False, cancel_futures=True)
        for lookup in self.active.values():
            if lookup.file is not None:
                lookup.file.close()  # nothing left behind in upload_dir


def _walk(component: BaseComponent):
    stack = [component]
    while stack:
        comp = stack.pop()
        yield comp
        stack.extend(comp.components)
