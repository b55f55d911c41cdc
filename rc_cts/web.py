"""The protocol's endpoints under ``urlbase``: OPTIONS, POST and GET ``/<urlbase>/<service>[/<id>]``."""
from __future__ import annotations

import logging
import os
import time
from typing import Callable, List, Optional, Tuple
from urllib.parse import unquote

from .auth import BasicAuth
from .body import MultipartBody, body_for
from .config import Settings
from .dispatch import Dispatcher
from .errors import HttpError
from .hits import searcher_channel
from .httpserver import Request
from .protocol import done_body, request_id, retry_body
from .store import LookupRecord, Store, StoreError

LOG = logging.getLogger(__name__)
ACCESS = logging.getLogger("rc_cts.access")

Respond = Callable[..., None]


class ThreatServiceApp:
    """Answers the platform; the HttpServer calls ``begin`` then ``handle`` for each request."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher, store: Store):
        self.settings = settings
        self.dispatcher = dispatcher
        self.store = store
        self.upload_dir = os.path.expanduser(settings.upload_dir) if settings.upload_dir else None
        self.urlbase = "/" + settings.urlbase.strip("/")
        self.auth = BasicAuth(settings.auth_user, settings.auth_password) if settings.auth_enabled else None

    # -- routing -------------------------------------------------------------------------------
    def _route(self, req: Request) -> Tuple[str, str, Optional[str]]:
        """(service, searcher channel, request id or None) for the request's path."""
        path = unquote(req.path)
        if path != self.urlbase and not path.startswith(self.urlbase + "/"):
            raise HttpError(404, f"no threat service at {req.path!r}; services are under {self.urlbase}/")
        parts = [p for p in path[len(self.urlbase):].split("/") if p]
        rid = parts.pop() if req.method == "GET" and parts else None
        if not parts:
            raise HttpError(404, f"no service name in {req.path!r}; use {self.urlbase}/<service>")
        channel = searcher_channel(*parts)
        if not self.dispatcher.has_searchers(channel):
            raise HttpError(404, f"unknown threat service {'/'.join(parts)!r}: no searcher is installed for it")
        return "/".join(parts), channel, rid

    def begin(self, req: Request):
        """Check the request as soon as its headers are in; return the body parser."""
        req.context["t0"] = time.perf_counter()
        if self.auth is not None:
            self.auth.check(req.headers.get("authorization"))
        if req.method not in ("OPTIONS", "POST", "GET"):
            raise HttpError(405, f"method {req.method} is not supported", {"Allow": "OPTIONS, POST, GET"})
        req.context["route"] = self._route(req)
        if req.method == "POST":
            body = body_for(req.headers.get("content-type", ""), self.upload_dir,
                            self.settings.max_file_bytes, self.settings.max_body_bytes)
            if isinstance(body, MultipartBody):  # room for the file part, limited on its own
                req.max_body = self.settings.max_body_bytes + self.settings.max_file_bytes
            return body
        return None

    def handle(self, req: Request, respond: Respond) -> None:
        service, channel, rid = req.context["route"]

        def answer(status: int, payload, headers=None) -> None:
            ACCESS.info("%s %s %d %.1fms", req.method, req.path, status,
                        (time.perf_counter() - req.context["t0"]) * 1000)
            respond(status, payload, headers)

        if req.method == "OPTIONS":
            answer(200, {"upload_file": self.settings.upload_file or self.dispatcher.wants_files(channel)})
        elif req.method == "POST":
            self._post(req, service, channel, answer)
        else:
            self._get(req, service, channel, rid, answer)

    # -- endpoints -----------------------------------------------------------------------------
    def _post(self, req: Request, service: str, channel: str, answer: Respond) -> None:
        try:
            artifact, file = req.body.finish()
        except HttpError:
            req.body.discard()
            raise
        rid = request_id(service, artifact, file.sha256 if file is not None else None)
        try:
            record = self.dispatcher.result(rid)
            if record is not None and record.complete:
                if file is not None:
                    file.close()
                answer(200, done_body(rid, record.hits))
                return
            lookup = self.dispatcher.start(LookupRecord(rid, service, artifact), channel, file)
        except StoreError as exc:
            if file is not None:
                file.close()
            raise self._unavailable(exc) from None
        self._answer_when_done(req, service, rid, lookup, self.settings.first_retry_secs, answer)

    def _get(self, req: Request, service: str, channel: str, rid: str, answer: Respond) -> None:
        lookup = self.dispatcher.active.get(rid)
        try:
            record = self.dispatcher.result(rid)
            if record is None and lookup is None or record is not None and record.service != service:
                raise HttpError(404, f"no lookup {rid!r} for service {service!r}; it may have expired")
            if record is not None and record.complete:
                answer(200, done_body(rid, record.hits))
                return
            if lookup is None:  # pending elsewhere: take it over if its owner stopped renewing the lease
                lookup = self.dispatcher.start(record, channel, None, resumed=True)
        except StoreError as exc:
            raise self._unavailable(exc) from None
        self._answer_when_done(req, service, rid, lookup, self.settings.later_retry_secs, answer)

    def _answer_when_done(self, req: Request, service: str, rid: str, lookup, retry_secs: float,
                          answer: Respond) -> None:
        """200 with the hits if the lookup completes within sync_wait_secs, else 303.
        ``lookup`` is the one running here, or None if another process runs it."""

        def done(record: Optional[LookupRecord]) -> None:
            if record is not None:
                answer(200, done_body(rid, record.hits))
            else:
                hits = self.dispatcher.pending_hits(rid) if lookup is not None else []
                answer(303, retry_body(rid, retry_secs, hits), self._location(service, rid))

        if lookup is not None:
            self.dispatcher.wait(lookup, self.settings.sync_wait_secs, done)
        else:
            self.dispatcher.wait_elsewhere(rid, self.settings.sync_wait_secs, done)

    def _location(self, service: str, rid: str) -> dict:
        return {"Location": f"{self.urlbase}/{service}/{rid}"}

    @staticmethod
    def _unavailable(exc: StoreError) -> HttpError:
        LOG.error("store unavailable: %s", exc)
        return HttpError(503, "the result store is unavailable; retry later", {"Retry-After": "5"})
