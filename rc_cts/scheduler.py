"""Timers for the event loop without a circuits ``Timer`` component each.

Registering a component clears circuits' handler cache, so one ``Timer``
per request would slow every event; this keeps one heap instead and wakes
the poller in time for the next deadline.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, List, Optional, Tuple

from circuits import BaseComponent, Event, handler

LOG = logging.getLogger(__name__)


class TimerHandle:
    """A timer's callable, until it runs or is cancelled: a cancelled one lets go of it at
    once, so what it would have been called with (a lookup...) is not kept until its time."""
    __slots__ = ("cancelled", "when", "fn", "args", "_scheduler")

    def __init__(self, when: float, fn: Callable[..., Any], args: tuple, scheduler: "Scheduler") -> None:
        self.cancelled = False
        self.when = when  # time.monotonic() at which it fires
        self.fn: Optional[Callable[..., Any]] = fn
        self.args = args
        self._scheduler: Optional[Scheduler] = scheduler

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self.fn, self.args = None, ()
            if self._scheduler is not None:
                self._scheduler._timer_cancelled()
                self._scheduler = None


class run_in_loop(Event):
    """Run a callable in the event loop thread (fired from other threads)."""


class Scheduler(BaseComponent):
    """``call_later`` for code running in the event loop thread, and ``call_soon_threadsafe``
    for other threads to hand work to it."""

    def __init__(self, channel: str = "rc_cts.scheduler"):
        super().__init__(channel=channel)
        self._heap: List[Tuple[float, int, TimerHandle]] = []
        self._cancelled = 0  # cancelled timers still in the heap
        self._seq = itertools.count()
        self._handed: Deque[Callable[[], Any]] = deque()  # from other threads, for the loop
        self._wake_lock = threading.Lock()
        self._wake_pending = False

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + max(0.0, delay), fn, args, self)
        heapq.heappush(self._heap, (handle.when, next(self._seq), handle))
        return handle

    def _timer_cancelled(self) -> None:
        """Most timers are cancelled long before their time (call and lookup timeouts): once
        they are over half the heap, it is rebuilt without them."""
        self._cancelled += 1
        if self._cancelled > 256 and self._cancelled * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2].cancelled]
            heapq.heapify(self._heap)
            self._cancelled = 0

    def call_soon_threadsafe(self, fn: Callable[[], Any]) -> None:
        """From any thread: run ``fn`` in the loop thread.  Callables handed over while the loop
        is busy share one circuits event (about 0.2 ms each), so a burst costs one wake-up."""
        self._handed.append(fn)
        with self._wake_lock:
            if self._wake_pending:
                return
            self._wake_pending = True
        self.fire(run_in_loop(), self.channel)

    @handler("run_in_loop")
    def _on_run_in_loop(self) -> None:
        with self._wake_lock:
            self._wake_pending = False
        handed = self._handed
        for _ in range(len(handed)):
            fn = handed.popleft()
            try:
                fn()
            except Exception:  # one failing callback must not stop the others
                LOG.exception("callback %r failed", fn)

    def call_every(self, interval: float, fn: Callable[[], Any]) -> None:
        def tick() -> None:
            try:
                fn()
            finally:
                self.call_later(interval, tick)
        self.call_later(interval, tick)

    @handler("generate_events", channel="*")
    def _on_generate_events(self, event) -> None:
        now = time.monotonic()
        heap = self._heap
        while heap and heap[0][0] <= now:
            handle = heapq.heappop(heap)[2]
            if handle.cancelled:
                self._cancelled -= 1
                continue
            fn, args = handle.fn, handle.args
            handle.cancelled, handle.fn, handle.args, handle._scheduler = True, None, (), None  # ran
            try:
                fn(*args)  # type: ignore[misc]
            except Exception:  # one failing timer must not stop the others
                LOG.exception("timer callback %r failed", fn)
            heap = self._heap  # a callback's cancel may have rebuilt it
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
            self._cancelled -= 1
        if heap:
            event.reduce_time_left(max(0.0, heap[0][0] - time.monotonic()))
