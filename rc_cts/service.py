"""The threat service as one circuits component: web server, dispatcher, store and timers.

It is built from ``opts`` alone, so the standalone runner and the
resilient-circuits daemon create it the same way.
"""
from __future__ import annotations

import logging
import signal
from typing import Any, Mapping, Optional

from circuits import BaseComponent, handler

from .bulkhead import SearcherLimits
from .config import Settings, service_limits_from_opts, settings_from_opts
from .dispatch import Dispatcher
from .httpserver import HttpServer
from .registry import service_of
from .scheduler import Scheduler
from .store import Store, open_store
from .web import ThreatServiceApp

LOG = logging.getLogger(__name__)


class CustomThreatService(BaseComponent):
    """Serves every searcher in the component tree at ``<urlbase>/<service>``."""

    channel = "rc_cts"

    def __init__(self, opts: Optional[Mapping[str, Any]] = None, *,
                 settings: Optional[Settings] = None, store: Optional[Store] = None):
        super().__init__()
        self.settings = settings or settings_from_opts(opts or {})
        s = self.settings
        self.store = store or open_store(s)
        self.scheduler = Scheduler().register(self)
        limits = SearcherLimits(max_concurrency=s.workers, max_queue=s.max_queue,
                                call_timeout_secs=s.call_timeout_secs, max_abandoned=s.workers)
        self.dispatcher = Dispatcher(self.store, self.scheduler, limits=limits,
                                     limit_overrides=service_limits_from_opts(opts or {}),
                                     max_retries=s.max_retries,
                                     incomplete_retry_secs=s.incomplete_retry_secs,
                                     lookup_timeout_secs=s.lookup_timeout_secs,
                                     lease_secs=s.lease_secs).register(self)
        self.app = ThreatServiceApp(s, self.dispatcher, self.store)
        self.http = HttpServer(self.app, (s.server, s.port), secure=s.secure, certfile=s.certfile,
                               keyfile=s.keyfile, max_body_bytes=s.max_body_bytes,
                               idle_timeout=s.idle_timeout_secs,
                               request_timeout=s.request_timeout_secs,
                               max_connections=s.max_connections,
                               scheduler=self.scheduler).register(self)

    @property
    def url(self) -> str:
        """The base URL services are registered under, e.g. ``http://127.0.0.1:9000/cts``."""
        return self.http.url + self.app.urlbase

    @handler("started", channel="*")
    def _on_started(self, component) -> None:
        channels = self.dispatcher.registry.channels()
        if not channels:
            LOG.warning("no searchers are installed: every service name will answer 404")
        for channel in channels:
            LOG.info("serving %s/%s", self.url, service_of(channel))

    @handler("signal", channel="*")
    def _on_signal(self, signo, stack) -> None:
        """Stop on SIGINT/SIGTERM.  circuits only adds its fallback handler when nothing else
        handles ``signal``, and a searcher's catch-all handler counts as one."""
        if signo in (signal.SIGINT, signal.SIGTERM):
            LOG.info("stopping on signal %d", signo)
            raise SystemExit(0)

    @handler("stopped", channel="*")
    def _on_stopped(self, component) -> None:
        self.store.close()
