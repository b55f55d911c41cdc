"""Endpoints for operators, outside the urlbase: ``/healthz``, ``/readyz`` and ``/metrics``.

Load balancers and Kubernetes probes carry no credentials, so ``/healthz`` and ``/readyz``
are open; they say nothing an anonymous caller should not learn (no store address, and the
service names only to a caller who may read ``/metrics``).  ``/metrics`` names every
service and searcher, so it asks for the service's Basic credentials when those are set,
or for a token of its own (``metrics_token``).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from .auth import BasicAuth
from ..lookups.breaker import BreakerState
from .errors import HttpError
from .server import RawBody, Request
from ..store import StoreError

if TYPE_CHECKING:
    from ..lookups.dispatcher import Dispatcher
    from ..lookups.registry import Searcher

LOG = logging.getLogger(__name__)
ACCESS = logging.getLogger("rc_cts.access")

HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
PATHS = frozenset({HEALTHZ, READYZ, METRICS})
BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="rc-cts metrics"'}
Respond = Callable[..., None]


class OperatorAccess:
    """Who may read ``/metrics`` (and the service names in ``/readyz``): the holder of
    ``metrics_token`` if one is set, else the service's Basic credentials if auth is on,
    else anyone.  (``/admin/cache`` is guarded the same way by ``admin_token``, and is off
    where this would let anyone in.)"""

    def __init__(self, basic: Optional[BasicAuth], token: Optional[str], option: str = "metrics_token"):
        self._basic = basic
        self._option = option
        # Digests, so that compare_digest compares equal lengths: timing tells nothing of the token.
        self._token = hashlib.sha256(token.encode("utf-8")).digest() if token else None

    @property
    def open(self) -> bool:
        return self._token is None and self._basic is None

    def check(self, header: Optional[str]) -> None:
        """Raise 401 unless the ``Authorization`` header may read the metrics."""
        if self._token is not None:
            scheme, _, given = (header or "").strip().partition(" ")
            digest = hashlib.sha256(given.strip().encode("utf-8")).digest()
            if not (hmac.compare_digest(digest, self._token) and scheme.lower() == "bearer"):
                raise HttpError(401, f"a Bearer token ({self._option}) is required", BEARER_CHALLENGE)
        elif self._basic is not None:
            self._basic.check(header)

    def allows(self, header: Optional[str]) -> bool:
        try:
            self.check(header)
        except HttpError:
            return False
        return True


class OpsEndpoints:
    """Answers the operators' paths; ``registry`` is set by the service (rc_cts/metrics.py)."""

    def __init__(self, dispatcher: "Dispatcher", access: OperatorAccess,
                 shutting_down: Callable[[], bool]):
        self.dispatcher = dispatcher
        self.access = access
        self._shutting_down = shutting_down
        self.registry = CollectorRegistry()  # the service's own, never the process-wide default
        self._last_failed: Optional[Tuple[str, ...]] = None  # readiness as last answered, for the log

    def begin(self, req: Request) -> None:
        """When the head is in: the method, and for /metrics the credentials."""
        if req.method not in ("GET", "HEAD"):
            raise HttpError(405, f"{req.path} answers GET only", {"Allow": "GET, HEAD"})
        if req.path == METRICS:
            self.access.check(req.headers.get("authorization"))

    def handle(self, req: Request, respond: Respond) -> None:
        def answer(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
            # DEBUG: a probe every few seconds would drown the access log
            ACCESS.debug("%s %s %d", req.method, req.path, status)
            respond(status, payload, {"Cache-Control": "no-store", **(headers or {})})

        if req.path == HEALTHZ:
            answer(200, {"status": "ok"})  # the loop answers: the process is alive
        elif req.path == READYZ:
            self._readyz(req, answer)
        else:
            try:
                encoder, content_type = choose_encoder(req.headers.get("accept", ""))
            except (TypeError, ValueError):  # an Accept it cannot read: the plain text format
                encoder, content_type = choose_encoder("")
            answer(200, RawBody(encoder(self.registry), content_type))

    def _readyz(self, req: Request, answer: Respond) -> None:
        """200 if searchers are loaded, at least one has its breaker closed, the store answers
        a ping and no shutdown has begun; else 503 naming the checks that failed.  The ping
        goes through the store gate: a store that does not answer costs its deadline (1.5 s),
        never the loop's time."""
        searchers = self.dispatcher.registry.searchers()
        checks = {"searchers": "ok" if searchers else "no searchers are loaded"}
        if searchers:
            # An open breaker moves on only when a call is offered; a replica that is not ready
            # gets none.  One whose cool-down is over (or that is probing) may serve again.
            closed = any(s.bulkhead.breaker.state is not BreakerState.OPEN or s.bulkhead.breaker.retry_in() == 0
                         for s in searchers)
            checks["breakers"] = "ok" if closed else "every searcher's circuit breaker is open"
        detail = self.access.allows(req.headers.get("authorization"))

        def with_store(error: Optional[StoreError]) -> None:
            checks["store"] = "ok" if error is None else "unavailable"
            checks["shutdown"] = "shutting down" if self._shutting_down() else "ok"
            failed = [name for name, state in checks.items() if state != "ok"]
            self._log_change(failed, error)
            body: Dict[str, Any] = {"status": "not ready" if failed else "ready", "failed": failed,
                                    "checks": checks}
            if detail:
                body["services"] = services_of(searchers)
                body["breakers"] = breakers_of(searchers)
            answer(503 if failed else 200, body)

        self.dispatcher.results.ping(with_store)

    def _log_change(self, failed: List[str], error: Optional[StoreError]) -> None:
        now = tuple(failed)
        if now == self._last_failed or (self._last_failed is None and not now):
            self._last_failed = now
            return
        self._last_failed = now
        if now:
            LOG.warning("not ready: %s%s", ", ".join(now), f" ({error})" if error is not None else "")
        else:
            LOG.info("ready again")


def breakers_of(searchers: List["Searcher"]) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """Service -> searcher -> its breaker's state, since when (UTC), and the seconds left
    before an open one lets its probe through."""
    found: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for searcher in searchers:
        breaker = searcher.bulkhead.breaker
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(breaker.since))
        state: Dict[str, Any] = {"state": breaker.state.value, "since": since, "trips": breaker.trips}
        if breaker.state is BreakerState.OPEN:
            state["probe_in_secs"] = round(breaker.retry_in(), 1)
        found.setdefault(searcher.service, {})[searcher.name] = state
    return {service: dict(sorted(names.items())) for service, names in sorted(found.items())}


def services_of(searchers: List["Searcher"]) -> Dict[str, List[str]]:
    """Service name -> names of the searchers answering on it (the labels /metrics uses)."""
    services: Dict[str, List[str]] = {}
    for searcher in searchers:
        for service in searcher.services:
            services.setdefault(service, []).append(searcher.name)
    return {service: sorted(names) for service, names in sorted(services.items())}
