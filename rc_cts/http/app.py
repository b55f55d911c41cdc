"""The protocol's endpoints under ``urlbase``: OPTIONS, POST and GET ``/<urlbase>/<service>[/<id>]``;
and, outside it, the operators' ``/healthz``, ``/readyz`` and ``/metrics`` (``ops.py``)."""
from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import unquote

from cachetools import LRUCache

from .access import UnknownTypes, log_answer
from .admin import PATHS as ADMIN_PATHS, CacheAdmin
from .auth import BasicAuth
from .body import MultipartBody, body_for
from ..config.settings import Settings
from ..lookups.dispatcher import Dispatcher
from ..lookups.results import Answers
from ..lookups.state import Answer, Lookup
from .errors import HttpError
from .files import ArtifactFile, Uploads, release
from .ops import PATHS as OPS_PATHS, OperatorAccess, OpsEndpoints
from ..hits import searcher_channel
from .server import Request
from .protocol import done_body, request_id, retry_body
from ..store import LookupRecord, StoreError

LOG = logging.getLogger(__name__)

Respond = Callable[..., None]
UNKNOWN_IDS_REMEMBERED = 4096
MAX_ID_LENGTH = 128
COUNTED_METHODS = frozenset({"OPTIONS", "POST", "GET"})  # any other method is counted as "other"


class ThreatServiceApp:
    """Answers the platform; the HttpServer calls ``begin`` then ``handle`` for each request."""

    def __init__(self, settings: Settings, dispatcher: Dispatcher):
        self.settings = settings
        self.dispatcher = dispatcher
        self.upload_dir = os.path.expanduser(settings.upload_dir) if settings.upload_dir else None
        self.uploads = Uploads(self.upload_dir)
        self.urlbase = "/" + settings.urlbase.strip("/")
        self.auth = (BasicAuth(settings.auth_user or "", settings.auth_password or "")
                     if settings.auth_enabled else None)
        self._unknown_ids: LRUCache = LRUCache(maxsize=UNKNOWN_IDS_REMEMBERED)  # logged once each
        # For /metrics (rc_cts/metrics.py): plain counters, changed and read in the loop thread.
        self.requests: Dict[Tuple[str, int], int] = {}  # (method, status) -> requests answered
        self.posts = 0          # POSTs with a valid artifact
        self.posts_cached = 0   # ...answered from the cached answers alone: no searcher called
        self.shutting_down = False  # set by the service, in the loop thread, when it starts to drain
        self.ops = OpsEndpoints(dispatcher, OperatorAccess(self.auth, settings.metrics_token),
                                lambda: self.shutting_down)
        self.admin = CacheAdmin(dispatcher, OperatorAccess(self.auth, settings.admin_token, "admin_token"))
        self._unknown_types = UnknownTypes()

    # -- routing -------------------------------------------------------------------------------
    def _route(self, req: Request) -> Tuple[str, str, Optional[str]]:
        """(service, searcher channel, request id or None) for the request's path."""
        path = unquote(req.path)
        if path != self.urlbase and not path.startswith(self.urlbase + "/"):
            raise HttpError(404, f"no threat service at {req.path!r}; services are under {self.urlbase}/")
        parts = [p for p in path[len(self.urlbase):].split("/") if p]
        rid = None
        if req.method == "GET" and parts:
            if path.endswith("/") or len(parts) == 1 or self._serves(parts) and not self._serves(parts[:-1]):
                self._no_id(parts)
            rid = parts.pop()
        if rid is not None and len(rid) > MAX_ID_LENGTH:
            raise HttpError(400, f"{rid[:40]!r}... is not a lookup id (at most {MAX_ID_LENGTH} characters)")
        if not parts:
            raise HttpError(404, f"no service name in {req.path!r}; use {self.urlbase}/<service>")
        channel = searcher_channel(*parts)
        if not self.dispatcher.has_searchers(channel):
            raise HttpError(404, f"unknown threat service {'/'.join(parts)!r}: no searcher is installed for it")
        return "/".join(parts), channel, rid

    def _serves(self, parts: List[str]) -> bool:
        return self.dispatcher.has_searchers(searcher_channel(*parts))

    def _no_id(self, parts: List[str]) -> None:
        """A GET of ``<urlbase>/<service>``: 405 if the service exists (it takes OPTIONS and
        POST; a GET needs the id a POST answered with), else the unknown service's 404."""
        service = "/".join(parts)
        if not self._serves(parts):
            raise HttpError(404, f"unknown threat service {service!r}: no searcher is installed for it")
        raise HttpError(405, f"GET needs a lookup id: GET {self.urlbase}/{service}/<id>, with the id a POST "
                             f"to {self.urlbase}/{service} answered", {"Allow": "OPTIONS, POST"})

    def begin(self, req: Request):
        """Check the request as soon as its headers are in; return the body parser."""
        req.context["t0"] = time.perf_counter()
        if req.path in OPS_PATHS:  # not behind the Basic auth: probes carry no credentials
            req.context["ops"] = True
            self.ops.begin(req)
            return None
        if req.path in ADMIN_PATHS:  # its own credentials: admin_token, else the Basic ones
            req.context["admin"] = True
            self.admin.begin(req)
            return None
        try:
            if self.auth is not None:
                self.auth.check(req.headers.get("authorization"))
            if req.method not in ("OPTIONS", "POST", "GET"):
                raise HttpError(405, f"method {req.method} is not supported", {"Allow": "OPTIONS, POST, GET"})
            req.context["route"] = self._route(req)
            if req.method == "POST":
                body = body_for(req.headers.get("content-type", ""), self.uploads,
                                self.settings.max_file_bytes, self.settings.max_body_bytes)
                if isinstance(body, MultipartBody):  # room for the file part, limited on its own
                    req.max_body = self.settings.max_body_bytes + self.settings.max_file_bytes
                return body
            return None
        except HttpError as exc:  # the server answers it
            self._count(req.method, exc.status)
            raise

    def handle(self, req: Request, respond: Respond) -> None:
        if req.context.get("ops"):
            self.ops.handle(req, respond)
            return
        if req.context.get("admin"):
            self.admin.handle(req, respond)
            return
        service, channel, rid = req.context["route"]

        def answer(status: int, payload, headers=None, outcome=None) -> None:
            log_answer(req, status, outcome)
            self._count(req.method, status)
            respond(status, payload, headers)

        try:
            if req.method == "OPTIONS":
                answer(200, {"upload_file": self.settings.upload_file or self.dispatcher.wants_files(channel)})
            elif req.method == "POST":
                self._post(req, service, channel, answer)
            else:
                self._get(req, service, channel, rid, answer)
        except HttpError as exc:  # a body that does not parse: the server answers it
            self._count(req.method, exc.status)
            raise

    def _count(self, method: str, status: int) -> None:
        key = (method if method in COUNTED_METHODS else "other", status)
        self.requests[key] = self.requests.get(key, 0) + 1

    # -- endpoints -----------------------------------------------------------------------------
    def _post(self, req: Request, service: str, channel: str, answer: Respond) -> None:
        artifact, file = req.body.finish()  # the body closes the file itself if this raises
        held: Optional[ArtifactFile] = file  # this request's to close until handed to the dispatcher
        self.posts += 1

        def hand_over() -> Optional[ArtifactFile]:
            nonlocal held
            given, held = held, None
            return given

        def with_record(record: Optional[LookupRecord], answers: Answers, error: Optional[StoreError]) -> None:
            try:
                if error is not None:
                    self._unavailable(answer, error)
                    return
                if record is None or record.complete:  # nothing runs: the cached answers may do
                    hits = self.dispatcher.cached_hits(keys, artifact, rid, answers)
                    if hits is not None:
                        self.posts_cached += 1
                        answer(200, done_body(rid, hits), outcome=f"cached hits={len(hits)}")
                        return
                # a new lookup, calling the searchers without a usable cached answer; or the
                # pending one, joined or taken over.  The dispatcher closes the file from here on.
                new = LookupRecord(rid, service, artifact, file_sha256=sha256)
                lookup = self.dispatcher.start(new, channel, hand_over(), answers=answers, keys=keys)
                self._answer_when_done(rid, record, lookup, self.settings.first_retry_secs, answer)
            except Exception:  # called back from the store's thread maybe: nobody above answers
                LOG.exception("unhandled error answering POST %s", req.path)
                answer(500, {"error": "internal server error"}, outcome="error")
            finally:
                release(hand_over())

        try:
            sha256 = file.sha256 if file is not None else None
            rid = request_id(service, artifact, sha256)
            req.context["lookup"] = (rid, service, artifact["type"])
            self._unknown_types.note(artifact["type"], service)
            running = self.dispatcher.active.get(rid)
            if running is not None:  # an identical lookup is running here: join it
                release(hand_over())
                self._answer_when_done(rid, None, running, self.settings.first_retry_secs, answer)
                return
            keys = self.dispatcher.answer_keys(channel, artifact, sha256)
            self.dispatcher.results.read_with_answers(rid, [key for _handler, key in keys],
                                                      with_record)  # with_record owns the file now
        except BaseException:
            release(hand_over())  # unless with_record handed it over already
            raise

    def _get(self, req: Request, service: str, channel: str, rid: str, answer: Respond) -> None:
        req.context["lookup"] = (rid, service, "-")
        running = self.dispatcher.active.get(rid)
        if running is not None and running.record.service == service:
            self._answer_when_done(rid, None, running, self.settings.later_retry_secs, answer)
            return

        def with_record(record: Optional[LookupRecord], error: Optional[StoreError]) -> None:
            if error is not None:
                self._unavailable(answer, error)
                return
            if record is None or record.service != service:
                self._unknown_id(rid, service)
                answer(200, done_body(rid, []), outcome="unknown-id hits=0")
                return
            if record.whole:
                answer(200, done_body(rid, record.hits), outcome=record)
                return
            if record.complete:  # ended incomplete: this GET is one more poll
                record = replace(record, polls=record.polls + 1)
                if record.polls >= self.settings.max_retries:
                    LOG.warning("lookup %s still has no answer from %s after %d polls: answering with "
                                "the hits found; a new POST runs them again", rid,
                                ", ".join(sorted(record.missing)), record.polls)
                    answer(200, done_body(rid, record.shown_hits), outcome=record)
                    return
                lookup = self.dispatcher.rerun_missing(record, channel)
            else:  # pending elsewhere: take it over if its owner stopped renewing the lease
                lookup = self.dispatcher.start(record, channel, None, resumed=True)
            self._answer_when_done(rid, record, lookup, self.settings.later_retry_secs, answer)

        self.dispatcher.results.read(rid, with_record)

    def _answer_when_done(self, rid: str, record: Optional[LookupRecord], lookup: Optional[Lookup],
                          retry_secs: float, answer: Respond) -> None:
        """200 with the hits if the lookup ends whole within sync_wait_secs, else 303 with the
        hits so far.  ``lookup`` is None if ``record`` ended incomplete and its missing searchers
        are not due to run again."""

        def done(ended: Answer) -> None:
            if isinstance(ended, StoreError):
                self._unavailable(answer, ended)
            elif ended is not None and ended.whole:
                answer(200, done_body(rid, ended.hits), outcome=ended)
            elif ended is not None:
                answer(303, retry_body(rid, retry_secs, ended.shown_hits), pending_header(sorted(ended.missing)),
                       outcome=ended)
            else:
                answer(303, retry_body(rid, self.dispatcher.retry_secs(rid, retry_secs),
                                       self.dispatcher.pending_hits(rid)),
                       pending_header(self.dispatcher.pending_searchers(rid)), outcome=lookup or "pending")

        if lookup is not None:
            self.dispatcher.wait(lookup, self.settings.sync_wait_secs, done)
        else:
            done(record)

    def _unknown_id(self, rid: str, service: str) -> None:
        """A GET for an id this service has no record of (expired, lost with a memory store, or
        never issued).  The original answers 200 with no hits, so the platform waits for its next
        rescan rather than giving the artifact up (a 4xx); logged once per id."""
        if rid not in self._unknown_ids:
            self._unknown_ids[rid] = True
            LOG.warning("GET of an unknown or expired lookup id %r for service %r: answered with "
                        "no hits", rid, service)

    @staticmethod
    def _unavailable(answer: Respond, exc: StoreError) -> None:
        LOG.error("store unavailable: %s", exc)
        answer(503, {"error": "the result store is unavailable; retry later"}, {"Retry-After": "5"}, outcome=exc)


PENDING_HEADER = "X-Pending-Searchers"


def pending_header(labels: List[str]) -> Dict[str, str]:
    """A 303's searchers still to answer, for ``rc-cts lookup --url``'s progress: a header,
    since the protocol's body has no place for it (the platform ignores headers it does not know)."""
    return {PENDING_HEADER: ", ".join(labels)} if labels else {}
