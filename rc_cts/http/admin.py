"""``DELETE /admin/cache``: drop cached answers, for an operator who knows a provider changed
its mind (a false positive withdrawn) or who wants one artifact looked up afresh.

    DELETE /admin/cache                              every cached answer
    DELETE /admin/cache?service=S                    service S's
    DELETE /admin/cache?service=S&type=T&value=V     one artifact's, on S (all services without S)

It changes state, so it is never open: it asks for ``admin_token`` (Bearer), else the
service's Basic credentials, and with neither configured it answers 404.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional
from urllib.parse import parse_qsl

from .errors import HttpError
from .ops import OperatorAccess
from .server import Request
from ..store import StoreError
from ..store.answers import artifact_digest

if TYPE_CHECKING:
    from ..lookups.dispatcher import Dispatcher

LOG = logging.getLogger(__name__)

CACHE = "/admin/cache"
PATHS = frozenset({CACHE})
QUERY_FIELDS = ("service", "type", "value")
MAX_QUERY_BYTES = 8192
Respond = Callable[..., None]


class CacheAdmin:
    """Clears the per-searcher answer cache through the store, wherever it is."""

    def __init__(self, dispatcher: "Dispatcher", access: OperatorAccess):
        self.dispatcher = dispatcher
        self.access = access

    def begin(self, req: Request) -> None:
        if self.access.open:
            raise HttpError(404, "the admin endpoint is off: set admin_token (or auth_user) to use it")
        self.access.check(req.headers.get("authorization"))
        if req.method != "DELETE":
            raise HttpError(405, f"{req.path} answers DELETE only", {"Allow": "DELETE"})

    def handle(self, req: Request, reply: Respond) -> None:
        def respond(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
            reply(status, payload, {"Cache-Control": "no-store", **(headers or {})})

        query = parse_query(req.target)
        service = query.get("service") or None
        artifact_type, value = query.get("type"), query.get("value")
        artifact = artifact_digest(artifact_type, value) if artifact_type is not None else None

        def done(count: Optional[int], error: Optional[StoreError]) -> None:
            if error is not None:
                LOG.error("cache not cleared: %s", error)
                respond(503, {"error": "the store is unavailable; retry later"}, {"Retry-After": "5"})
                return
            LOG.info("cached answers cleared: %d (service %s, %s)", count or 0, service or "every one",
                     f"one {artifact_type} artifact" if artifact else "every artifact")
            respond(200, {"cleared": count or 0, "service": service, "artifact": bool(artifact)})

        self.dispatcher.results.clear_answers(service, artifact, done)


def parse_query(target: str) -> Dict[str, Any]:
    """The query's known fields; 400 for one too long, repeated, unknown, or type without value."""
    query = target.partition("?")[2]
    if len(query) > MAX_QUERY_BYTES:
        raise HttpError(400, f"the query is longer than {MAX_QUERY_BYTES} bytes")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), max_num_fields=len(QUERY_FIELDS),
                          errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, f"the query does not parse: {exc}") from None
    found: Dict[str, Any] = {}
    for name, value in pairs:
        if name not in QUERY_FIELDS:
            raise HttpError(400, f"unknown query field {name[:40]!r}; use {', '.join(QUERY_FIELDS)}")
        if name in found:
            raise HttpError(400, f"query field {name!r} given twice")
        found[name] = value
    if ("type" in found) != ("value" in found):
        raise HttpError(400, "type and value go together: both name one artifact")
    if any(name in found and not found[name].strip() for name in QUERY_FIELDS):
        raise HttpError(400, "an empty service, type or value names nothing: leave it out to mean all")
    return found
