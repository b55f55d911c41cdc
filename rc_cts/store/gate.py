"""Store I/O off the event loop: one thread runs every call to a store that can block.

A Redis that stops answering, or an SQLite file on a slow disk, must not freeze the
HTTP front: OPTIONS still answers at once, and a request that needs the store gets
503 within ``STORE_DEADLINE_SECS`` instead of waiting for the socket timeout.
Calls run in order, one at a time (the stores are not built for concurrent use);
their results come back to the loop thread through ``post``.  A store that never
blocks (the memory store) is called inline.
"""
from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from typing import Any, Callable, Optional, Tuple

from ..scheduler import Scheduler
from .base import Store, StoreError

LOG = logging.getLogger(__name__)

STORE_DEADLINE_SECS = 1.5   # a read or a lease not answered by then is answered 503
Post = Callable[[Callable[[], None]], None]
OnResult = Callable[[Any, Optional[StoreError]], None]


class StoreGate:
    """Runs store calls in a thread of its own, with a deadline for those someone waits on."""

    def __init__(self, store: Store, scheduler: Scheduler, post: Post):
        self.store = store
        self._scheduler = scheduler
        self._post = post
        self.inline = not getattr(store, "blocking", True)
        self._queue: "queue.Queue[Optional[Tuple[Callable[[], Any], Optional[OnResult], float]]]" = queue.Queue()
        self._busy_since: Optional[float] = None  # when the call running now started
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self.errors = 0  # StoreErrors reported, for /metrics: counted in the loop thread only

    def call(self, fn: Callable[[Store], Any], on_result: OnResult) -> None:
        """``on_result(value, None)`` in the loop thread, or ``(None, StoreError)`` if the store
        failed or did not answer within the deadline."""
        if self.inline:
            try:
                value = fn(self.store)
            except StoreError as exc:
                self.errors += 1
                on_result(None, exc)
                return
            on_result(value, None)
            return
        busy = self._busy_since
        if busy is not None and time.monotonic() - busy > STORE_DEADLINE_SECS:
            self.errors += 1
            on_result(None, StoreError("the store has not answered for "
                                       f"{time.monotonic() - busy:.1f}s"))
            return
        answered = [False]

        def deliver(value: Any, error: Optional[StoreError]) -> None:
            if not answered[0]:
                answered[0] = True
                if error is not None:
                    self.errors += 1
                on_result(value, error)

        def late() -> None:
            deliver(None, StoreError(f"the store did not answer within {STORE_DEADLINE_SECS}s"))

        timer = self._scheduler.call_later(STORE_DEADLINE_SECS, late)

        def back(value: Any, error: Optional[StoreError]) -> None:
            timer.cancel()
            deliver(value, error)

        self._submit(lambda: fn(self.store), back, timer.when)

    def write(self, fn: Callable[[Store], Any], on_error: Optional[Callable[[StoreError], None]] = None) -> None:
        """Run a write nobody waits for; ``on_error`` (in the loop thread) if it fails."""
        if self.inline:
            try:
                fn(self.store)
            except StoreError as exc:
                self._write_failed(exc, on_error)
            return

        def back(_value: Any, error: Optional[StoreError]) -> None:
            if error is not None:
                self._write_failed(error, on_error)

        self._submit(lambda: fn(self.store), back, float("inf"))

    def _write_failed(self, error: StoreError, on_error: Optional[Callable[[StoreError], None]]) -> None:
        self.errors += 1
        if on_error is not None:
            on_error(error)
        else:
            LOG.warning("store write failed: %s", error)

    def close(self) -> None:
        """Stop the thread once the calls queued before are done, then close the store."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(5)
        self.store.close()

    # -- the I/O thread ----------------------------------------------------------------------
    def _submit(self, work: Callable[[], Any], back: Optional[OnResult], deadline: float) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rc-cts-store", daemon=True)
                self._thread.start()
        self._queue.put((work, back, deadline))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, back, deadline = item
            if time.monotonic() > deadline:
                continue  # answered 503 already: do not spend a hung store's timeout on it
            self._busy_since = time.monotonic()
            value, error = None, None
            try:
                value = work()
            except StoreError as exc:
                error = exc
            except Exception as exc:  # a bug in a store must not kill the I/O thread
                LOG.exception("store call failed")
                error = StoreError(str(exc))
                error.__cause__ = exc  # as `raise ... from exc` would: the traceback survives
            finally:
                self._busy_since = None
            if back is not None:
                self._post(functools.partial(back, value, error))
