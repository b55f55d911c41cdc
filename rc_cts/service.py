"""The threat service as one circuits component: it joins the host's component tree and
serves from an engine of its own.

The host is the standalone runner's Manager or the resilient-circuits daemon; the
searchers are components in the host's tree, where the service adopts them as they
join.  The HTTP front, the lookups and their timers run in the engine: a second
circuits Manager in a thread of its own, so a host loop that blocks (resilient-circuits
retrying an unreachable STOMP broker) does not stall a single answer.  It is built
from ``opts`` alone, so the runner and the daemon create it the same way.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from typing import Any, Iterator, Mapping, Optional

from circuits import BaseComponent, Manager, handler
from circuits.core.events import registered

from . import install_check, logs, selftest
from .config.settings import Settings, settings_from_opts
from .http.server import HttpServer
from .lookups.dispatcher import Dispatcher
from .hits import service_of
from .lookups.results import Results
from .scheduler import Scheduler
from .store import Store, open_store
from .store.gate import StoreGate
from .http.app import ThreatServiceApp
from .metrics import ServiceCollector, service_registry

LOG = logging.getLogger(__name__)
_SHUTDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def _signals_left_to_the_main_thread() -> Iterator[None]:
    """Threads started inside inherit a mask without SIGINT and SIGTERM, so the kernel delivers
    those to the main thread, where Python runs signal handlers: one landing on a thread blocked
    in epoll (the engine) or a wait stays unseen until the main thread next runs Python (circuits'
    idle wait lasts up to 10,000 s)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class CustomThreatService(BaseComponent):
    """Serves every searcher in the component tree at ``<urlbase>/<service>``."""

    channel = "rc_cts"

    def __init__(self, opts: Optional[Mapping[str, Any]] = None, *,
                 settings: Optional[Settings] = None, store: Optional[Store] = None):
        super().__init__()
        install_check.report()  # under the daemon too: IBM's rc_cts on the path is an ERROR
        logs.quiet_url_loggers()  # under the daemon too: its logging is its own, artifact values are ours
        self.settings = settings or settings_from_opts(opts or {})
        s = self.settings
        self.store = store or open_store(s)
        self.engine = Manager()
        self.scheduler = Scheduler().register(self.engine)
        results = Results(StoreGate(self.store, self.scheduler, self.scheduler.call_soon_threadsafe),
                          self.scheduler, s.lease_secs)
        self.dispatcher = Dispatcher(results, self.scheduler, s).register(self.engine)
        self.app = ThreatServiceApp(s, self.dispatcher)
        self.app.uploads.sweep()  # files a killed process left; before any upload of ours
        self.http = HttpServer(self.app, s, self.scheduler).register(self.engine)
        self.app.ops.registry = service_registry(ServiceCollector(self.app, self.dispatcher, self.http))
        self._engine_started = False
        self._stopping = False

    @property
    def url(self) -> str:
        """The base URL services are registered under, e.g. ``http://127.0.0.1:9000/cts``."""
        return self.http.url + self.app.urlbase

    # -- the host's tree ---------------------------------------------------------------------
    @handler("registered", channel="*", priority=1e9)
    def _on_registered(self, event, component, manager) -> None:
        """Adopt searchers as they join, before circuits dispatches any other event to them.

        circuits picks an event's handlers before the first one runs, so a catch-all handler
        adopted just now may be in this very event's list: the event is then stopped and fired
        again, its list now without the catch-all, which thus sees lookups only."""
        adopted = self.dispatcher.registry.adopt_tree(self.root)
        if any(h.types is None and h.legacy_name is None for s in adopted for h in s.handlers):
            event.stop()
            self.fire(registered(component, manager), *event.channels)
            return
        if component is self and self.root.running:
            self._start_engine()  # joined a host that runs already (a test fixture, a reload)

    @handler("started", channel="*")
    def _on_started(self, component) -> None:
        if component is self.root:
            self._start_engine()

    def _start_engine(self) -> None:
        if self._engine_started:
            return
        self._engine_started = True
        channels = self.dispatcher.registry.channels()
        if not channels:
            LOG.warning("no searchers are installed: every service name will answer 404")
        for channel in channels:
            LOG.info("serving %s/%s", self.url, service_of(channel))
        with _signals_left_to_the_main_thread():  # the engine's threads, and the threads they start
            self.engine.start()

    @handler("Connected", channel="*")
    def _on_stomp_connected(self, *args, **kwargs) -> None:
        """Under the daemon, STOMP has connected: ``resilient-circuits selftest`` waits for this."""
        selftest.stomp_connected(self)

    @handler("signal", channel="*")
    def _on_signal(self, signo, stack) -> None:
        """SIGINT/SIGTERM: stop accepting, cancel queued calls, give running calls up to
        ``shutdown_grace_secs``, then stop the host; a second signal exits at once.  (circuits
        only adds its own fallback when nothing handles ``signal``; a catch-all searcher did.)"""
        if signo not in (signal.SIGINT, signal.SIGTERM):
            return
        if self._stopping:
            LOG.warning("signal %d again: exiting now", signo)
            logging.shutdown()
            os._exit(128 + signo)
        self._stopping = True
        LOG.info("stopping on signal %d: no new connections, queued calls cancelled, up to %ss "
                 "for the calls running", signo, self.settings.shutdown_grace_secs)
        with _signals_left_to_the_main_thread():  # the second signal must reach the main thread too
            threading.Thread(target=self._shut_down, name="rc-cts-shutdown", daemon=True).start()

    def _shut_down(self) -> None:
        self._drain(self.settings.shutdown_grace_secs)
        self.root.stop()

    def _drain(self, grace: float) -> None:
        """In the engine: close the listener and the bulkhead queues, then wait (from this
        thread) until no call runs, or ``grace`` has passed; then stop the engine."""
        if not self._engine_started or not self.engine.running:
            return
        idle = threading.Event()
        deadline = time.monotonic() + grace
        searchers = self.dispatcher.registry.searchers

        def begin() -> None:
            self.app.shutting_down = True  # /readyz answers 503 on the connections still open
            self.http.listener.stop_accepting()
            cancelled = sum(s.bulkhead.cancel_queued() for s in searchers())
            LOG.info("shutting down: %d queued calls cancelled, %d running", cancelled,
                     sum(s.bulkhead.in_flight for s in searchers()))
            check()

        def check() -> None:
            running = sum(s.bulkhead.in_flight for s in searchers())
            if running and time.monotonic() < deadline:
                self.scheduler.call_later(0.05, check)
                return
            if running:
                LOG.warning("%d calls still running after %ss: leaving them", running, grace)
            idle.set()

        self.scheduler.call_soon_threadsafe(begin)
        idle.wait(grace + 1)
        self.engine.stop()
        self.engine.join()

    @handler("stopped", channel="*")
    def _on_stopped(self, component) -> None:
        if component is not self.root:
            return
        if self._engine_started and self.engine.running:
            self.engine.stop()
            self.engine.join()
        self.app.uploads.close_all()  # bodies half read, requests waiting on the store
        self.dispatcher.results.close()
