"""The asyncio loop that ``async def`` searcher handlers run on: one thread for all of them.

An I/O-bound searcher (httpx, aiohttp) can then hold hundreds of calls in flight
without a thread each.  The loop starts with the first async call and stops with
the service.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from typing import Optional

LOG = logging.getLogger(__name__)


class AsyncLoop:
    """Owns one asyncio event loop in a daemon thread."""

    def __init__(self, name: str = "rc-cts-async") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None

    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                self._thread = threading.Thread(target=self._run, args=(loop, ready), name=self._name,
                                                daemon=True)
                self._thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    def started(self) -> Optional[asyncio.AbstractEventLoop]:
        """The loop if an async call started it, else None (and it is not started)."""
        with self._lock:
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 2.0) -> None:
        """Cancel the calls still running and stop the loop's thread."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return

        def cancel_all() -> None:
            for task in asyncio.all_tasks(loop):
                task.cancel()
            loop.call_soon(loop.stop)

        loop.call_soon_threadsafe(cancel_all)
        thread.join(timeout)
        if thread.is_alive():
            LOG.warning("async searcher calls still running after %ss at shutdown", timeout)
