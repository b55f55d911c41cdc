"""One searcher's share of the service: its own threads, a bounded queue, a timeout per call.

A searcher whose API is slow or down can only use up its own bulkhead: other
searchers, and other services, keep their threads and answer at their own speed.
All methods but the worker's done callback run in the event loop thread; the
callback hops back there through ``post``.
"""
from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from ..scheduler import Scheduler, TimerHandle
from .breaker import Breaker, BreakerState
from .calls import DEFERRED, DONE, FAILED, INCOMPLETE, SKIPPED, TIMED_OUT, Outcome
from .limits import SearcherLimits
from .quota import NO_QUOTA, Quota

LOG = logging.getLogger(__name__)

GROW_AFTER_SECS = 0.02    # calls no worker has taken this long after submission get a thread
INLINE_BUDGET_SECS = 0.05  # a searcher declared non-blocking whose calls take longer...
INLINE_SLOW_CALLS = 3      # ...this many times in a row is moved to threads (one is a GC pause)
SKIP_LOG_SECS = 60.0       # an open breaker's skipped calls are logged at most this often
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

Post = Callable[[Callable[[], None]], None]           # run a callable in the loop thread
OnDone = Callable[[Outcome], None]


@dataclass
class SearcherStats:
    """Counters for the operations work to export (metrics, ``rc-cts searchers``)."""
    calls: int = 0
    done: int = 0
    failed: int = 0
    timed_out: int = 0
    deferred: int = 0          # calls refused (queue full) or held back (quota spent): lookups stay pending
    skipped: int = 0           # calls not made: the breaker was open (their lookups end incomplete)
    cache_hits: int = 0        # answers taken from the cache, fresh: no call made
    cache_stale: int = 0       # ...stale within stale_secs: served, and refreshed by a call
    cache_misses: int = 0      # lookups that found no usable cached answer: the searcher was called
    latency_counts: List[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum: float = 0.0

    def observe(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


class DaemonPool:
    """Up to ``size`` worker threads, started as calls need them.

    They are daemon threads: a call stuck past its timeout must not hold the process at
    exit, as ``ThreadPoolExecutor``'s threads would (the interpreter joins them)."""

    def __init__(self, size: int, name: str):
        self._size = size
        self._name = name
        self._queue: "queue.SimpleQueue[Optional[tuple]]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._submitted = 0  # calls handed over, and taken by a worker, since the start
        self._taken = 0

    def submit(self, calls: List[Tuple[Callable[[], Any], "OnEnd"]]) -> int:
        """Run each ``fn()`` in a worker, then ``on_end(result, None)`` or ``on_end(None, exc)``
        there.  No ``Future``: its condition variable costs more than an instant call.
        Starts a first worker if there is none; ``grow`` adds the others.  Returns the mark
        to give ``grow``: the number of calls submitted so far."""
        for item in calls:
            self._queue.put(item)
        with self._lock:
            self._submitted += len(calls)
            mark = self._submitted
        if self._threads == 0:
            self._start_threads(1)
        return mark

    def grow(self, mark: int) -> Optional[int]:
        """A moment after ``submit``: start a worker for each call up to ``mark`` that no
        worker has taken yet, so a burst of instant calls is run by the workers there are,
        and slow calls each get one.  The mark to check next, or None if none waits."""
        with self._lock:
            behind = mark - self._taken
            waiting = self._submitted > self._taken
            mark = self._submitted
        if behind > 0:
            self._start_threads(behind)
        return mark if waiting and self._threads < self._size else None

    def _start_threads(self, wanted: int) -> None:
        with self._lock:
            start = max(0, min(wanted, self._size - self._threads))
            self._threads += start
        for started in range(start):
            try:
                threading.Thread(target=self._work, name=f"{self._name}-{self._threads - started}",
                                 daemon=True).start()
            except RuntimeError as exc:  # the process is out of threads: the calls wait for a worker
                with self._lock:
                    self._threads -= start - started
                LOG.error("cannot start a worker thread for %s: %s", self._name, exc)
                return

    def shutdown(self) -> None:
        """Drop the calls not started; running ones finish (or are left behind at exit)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in range(self._threads):
            self._queue.put(None)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            with self._lock:
                self._taken += 1
            if item is None:
                return
            fn, on_end = item
            try:
                result = fn()
            except BaseException as exc:  # delivered to the loop as a failed call
                on_end(None, exc)
            else:
                on_end(result, None)


OnEnd = Callable[[Any, Optional[BaseException]], None]


class Call:
    """One handler call in a bulkhead: queued, running, abandoned (past its timeout) or ended."""

    __slots__ = ("work", "is_async", "on_done", "state", "future", "timer", "started", "probe")

    def __init__(self, work: Callable[[], Any], is_async: bool, on_done: OnDone):
        self.work = work            # sync: returns an Outcome; async: returns a coroutine of one
        self.is_async = is_async
        self.on_done: Optional[OnDone] = on_done  # None once told
        self.state = "queued"
        self.future: Optional[Future] = None  # an async call's, to cancel it at its timeout
        self.timer: Optional[TimerHandle] = None
        self.started = 0.0
        self.probe = False          # the half-open breaker's one call


class Bulkhead:
    """At most ``max_concurrency`` calls at once, at most ``max_queue`` waiting, each given up
    after ``call_timeout_secs`` (its slot is freed and the call ends ``TIMED_OUT``)."""

    def __init__(self, label: str, limits: SearcherLimits, scheduler: Scheduler, post: Post,
                 async_loop: Callable[[], asyncio.AbstractEventLoop], quota: Quota = NO_QUOTA):
        self.label = label
        self.limits = limits
        self.quota = quota
        self.inline = False       # the searcher declared ``blocking = False``: called in the loop
        self._slow_inline = 0     # its calls in a row over INLINE_BUDGET_SECS
        self._paused_until = 0.0  # the quota is spent until then: nothing starts
        self.stats = SearcherStats()
        self.breaker = Breaker(label, limits)
        self._skips_unlogged = 0
        self._skip_logged_at = 0.0
        self._scheduler = scheduler
        self._post = post
        self._async_loop = async_loop
        self._waiting: Deque[Call] = deque()
        self._to_threads: List[Tuple[Callable[[], Any], OnEnd]] = []  # started this loop turn
        self._growing = False
        self._running = 0
        self._abandoned = 0
        self._pool = DaemonPool(limits.max_concurrency + limits.max_abandoned, f"rc-cts-{label}")

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def abandoned(self) -> int:
        return self._abandoned

    def paused_for(self) -> float:
        """Seconds until its quota lets calls start again (0: not paused)."""
        return max(0.0, self._paused_until - time.monotonic())

    def submit(self, work: Callable[[], Any], is_async: bool, on_done: OnDone) -> Optional[Call]:
        """Start or queue the call; None if the queue is full (the caller defers the lookup).
        A call the breaker refuses ends ``SKIPPED`` at once."""
        call = Call(work, is_async, on_done)
        if self._has_room():
            self._begin(call)
        elif self.breaker.state is not BreakerState.CLOSED:
            self._skip(call)
        elif len(self._waiting) < self.limits.max_queue:
            self._waiting.append(call)
        else:
            self.stats.deferred += 1
            return None
        return call

    def cancel(self, call: Call) -> None:
        """Drop a call nobody waits for any more, if it has not started."""
        if call.state == "queued":
            call.state = "ended"
            try:
                self._waiting.remove(call)
            except ValueError:
                pass

    def cancel_queued(self) -> int:
        """Drop every call not started (at shutdown: their lookups stay pending in the store)."""
        count = len(self._waiting)
        for call in self._waiting:
            call.state = "ended"
        self._waiting.clear()
        return count

    def shutdown(self) -> None:
        self.cancel_queued()
        self._pool.shutdown()

    # -- internals ---------------------------------------------------------------------------
    def _has_room(self) -> bool:
        limits = self.limits
        return (self._paused_until <= time.monotonic() and self._running < limits.max_concurrency
                and self._running + self._abandoned < limits.max_concurrency + limits.max_abandoned)

    def _begin(self, call: Call) -> None:
        """A call with room to run: made, unless the breaker refuses it."""
        if not self.breaker.allow():
            self._skip(call)
            return
        call.probe = self.breaker.probe
        if self.inline and not call.is_async and not self.quota.blocking:
            self._run_inline(call)
        else:
            self._start(call)

    def _skip(self, call: Call) -> None:
        self.stats.skipped += 1
        self._skips_unlogged += 1
        now = time.monotonic()
        if now - self._skip_logged_at >= SKIP_LOG_SECS:
            LOG.warning("searcher %s: breaker %s since %s: %d calls not made (their lookups end "
                        "incomplete); next probe in %.0fs", self.label, self.breaker.state.value,
                        time.strftime("%H:%M:%S", time.localtime(self.breaker.since)),
                        self._skips_unlogged, self.breaker.retry_in())
            self._skip_logged_at = now
            self._skips_unlogged = 0
        call.state = "ended"
        self._finish(call, Outcome(SKIPPED))

    def _start(self, call: Call) -> None:
        call.state = "running"
        call.started = time.monotonic()
        self._running += 1
        self.stats.calls += 1
        call.timer = self._scheduler.call_later(self.limits.call_timeout_secs, self._timed_out, call)
        work = self._within_quota(call) if self.quota.windows else call.work
        if call.is_async:
            call.future = asyncio.run_coroutine_threadsafe(work(), self._async_loop())
            call.future.add_done_callback(functools.partial(self._on_future_done, call))
        else:  # handed to the threads once per loop turn: one wake-up for a burst
            if not self._to_threads:
                self._scheduler.call_later(0, self._hand_to_threads)
            self._to_threads.append((work, functools.partial(self._on_returned, call)))

    def _hand_to_threads(self) -> None:
        calls, self._to_threads = self._to_threads, []
        mark = self._pool.submit(calls)
        if not self._growing:
            self._growing = True
            self._scheduler.call_later(GROW_AFTER_SECS, self._grow, mark)

    def _grow(self, mark: int) -> None:
        next_mark = self._pool.grow(mark)
        self._growing = next_mark is not None
        if next_mark is not None:
            self._scheduler.call_later(GROW_AFTER_SECS, self._grow, next_mark)

    def _on_returned(self, call: Call, outcome: Any, exc: Optional[BaseException]) -> None:
        """In the worker (or the asyncio loop): hand the end of the call to the loop thread."""
        self._post(functools.partial(self._ended, call, None if exc is not None else outcome))

    def _on_future_done(self, call: Call, future: Future) -> None:
        failed = future.cancelled() or future.exception() is not None
        self._on_returned(call, None if failed else future.result(), None)

    def _run_inline(self, call: Call) -> None:
        """A searcher that answers from memory: no thread hop.  One that turns out slow is
        moved to threads for good, so a wrong declaration costs a few slow calls."""
        call.state = "running"
        self.stats.calls += 1
        started = time.monotonic()
        try:
            outcome = (self._within_quota(call) if self.quota.windows else call.work)()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # CancelledError, GeneratorExit...: a failed call, recorded as one
            LOG.error("searcher %s: a call raised %s", self.label, type(exc).__name__)
            outcome = Outcome(FAILED)
        elapsed = time.monotonic() - started
        self._slow_inline = self._slow_inline + 1 if elapsed > INLINE_BUDGET_SECS else 0
        if self._slow_inline >= INLINE_SLOW_CALLS:
            LOG.warning("searcher %s declares blocking = False but %d calls in a row took over %.0f ms "
                        "(the last %.0f ms): its calls run in threads from now on", self.label,
                        INLINE_SLOW_CALLS, INLINE_BUDGET_SECS * 1000, elapsed * 1000)
            self.inline = False
        self._count(outcome, elapsed, call.probe)
        self._finish(call, outcome)

    def _within_quota(self, call: Call) -> Callable[[], Any]:
        """The call, preceded by taking its place in the quota (I/O with a Redis quota, so in
        the worker, not the loop); ``DEFERRED`` without calling the handler if it is spent."""
        quota = self.quota
        if call.is_async:
            async def run_async() -> Outcome:
                if quota.blocking:
                    wait = await asyncio.get_running_loop().run_in_executor(None, quota.acquire)
                else:
                    wait = quota.acquire()
                return Outcome(DEFERRED, wait_secs=wait) if wait > 0 else await call.work()
            return run_async

        def run() -> Outcome:
            wait = quota.acquire()
            return Outcome(DEFERRED, wait_secs=wait) if wait > 0 else call.work()
        return run

    def _ended(self, call: Call, outcome: Optional[Outcome]) -> None:
        """In the loop thread, once the worker or the coroutine has returned; ``None`` if a
        BaseException got out (``call_searcher`` catches Exception) or it was cancelled."""
        if call.state == "abandoned":
            self._abandoned -= 1
        elif call.state == "running":
            self._running -= 1
            if call.timer is not None:
                call.timer.cancel()
            if outcome is None:
                outcome = Outcome(FAILED)
            self._count(outcome, time.monotonic() - call.started, call.probe)
            self._finish(call, outcome)
        self._drain()

    def _timed_out(self, call: Call) -> None:
        if call.state != "running":
            return
        LOG.warning("searcher %s: a call passed call_timeout_secs (%ss); its slot is freed",
                    self.label, self.limits.call_timeout_secs)
        call.state = "abandoned"
        self._running -= 1
        self._abandoned += 1
        if call.future is not None:
            call.future.cancel()  # ends a coroutine now; a thread runs on until it returns
        self._count(Outcome(TIMED_OUT), self.limits.call_timeout_secs, call.probe)
        self._finish(call, Outcome(TIMED_OUT))
        self._drain()

    def _finish(self, call: Call, outcome: Outcome) -> None:
        on_done, call.on_done = call.on_done, None
        if call.state == "running":
            call.state = "ended"
        if on_done is not None:
            on_done(outcome)

    def _count(self, outcome: Outcome, seconds: float, probe: bool) -> None:
        stats = self.stats
        self.breaker.record(BREAKER_VERDICT.get(outcome.status), probe)
        if outcome.status == DEFERRED:
            stats.calls -= 1
            stats.deferred += 1
            self.pause(outcome.wait_secs, share=outcome.pause_secs > 0)
            return
        if outcome.pause_secs > 0:  # answered, and the provider says that was the last call for now
            self.pause(outcome.pause_secs, share=True)
        if outcome.status == TIMED_OUT:
            stats.timed_out += 1
        elif outcome.status == FAILED:
            stats.failed += 1
        else:
            stats.done += 1
        stats.observe(seconds)

    def pause(self, seconds: float, share: bool = False) -> None:
        """No call starts for ``seconds``: the quota is spent.  ``share``: the provider said so
        (our own windows know it already), and the quota is told, which shares the pause with
        replicas if it is in Redis."""
        until = time.monotonic() + seconds
        if until <= self._paused_until:
            return
        if self._paused_until <= time.monotonic():
            LOG.info("searcher %s: quota spent; calls wait %.1fs", self.label, seconds)
        self._paused_until = until
        if share and self.quota.windows:
            self._quota_pause(seconds)
        self._scheduler.call_later(seconds, self._drain)

    def _quota_pause(self, seconds: float) -> None:
        if not self.quota.blocking:
            self.quota.pause(seconds)
            return
        threading.Thread(target=self.quota.pause, args=(seconds,), name=f"rc-cts-{self.label}-pause",
                         daemon=True).start()  # Redis I/O, never in the loop; rare (a provider's 429)

    def _drain(self) -> None:
        while self._waiting and self._has_room():
            call = self._waiting.popleft()
            if call.state == "queued":
                self._begin(call)


# How each outcome counts for the breaker: answered, failed, or never reached the provider.
BREAKER_VERDICT: Dict[str, Optional[bool]] = {DONE: True, INCOMPLETE: True, FAILED: False, TIMED_OUT: False}
