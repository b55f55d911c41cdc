"""An HTTP/1.1 server as a circuits component, for the threat service's few endpoints.

circuits.web reads whole bodies into memory with no limit, has no idle
timeout, and its TLS handshake blocks the event loop; this server parses
with ``h11`` instead, so it can stream bodies into the application, refuse
oversized ones early, answer asynchronously, and close idle or slow clients.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any, Dict, Optional

import h11
from circuits import BaseComponent, handler

from .errors import HttpError
from .listener import Listener
from ..config.settings import Settings
from ..scheduler import Scheduler

LOG = logging.getLogger(__name__)

READ_SIZE = 65536
MAX_BUFFERED_WHILE_BUSY = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
LINGER_SECS = 2.0                 # after refusing a request, read what the client still sends
LINGER_BYTES = 8 * 1024 * 1024    # ...for this long and this much, so it can read the answer
SWEEP_INTERVAL = 1.0
STATUS_REASON = {200: b"OK", 303: b"See Other", 400: b"Bad Request", 401: b"Unauthorized",
                 404: b"Not Found", 405: b"Method Not Allowed", 408: b"Request Timeout",
                 411: b"Length Required", 413: b"Payload Too Large",
                 415: b"Unsupported Media Type", 500: b"Internal Server Error",
                 503: b"Service Unavailable"}


class Request:
    """One HTTP request as the application sees it."""

    __slots__ = ("method", "target", "path", "headers", "peer", "body", "max_body", "context", "error",
                 "_conn")

    def __init__(self, method: str, target: str, headers: Dict[str, str], peer: Any, conn):
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers
        self.peer = peer
        self.body: Any = None  # a body parser from the application, fed as data arrives
        self.max_body: Optional[int] = None  # the application's limit for this request, if any
        self.context: Dict[str, Any] = {}
        self.error: Optional[HttpError] = None  # refused already; answered once the request is in
        self._conn = conn

    @property
    def connected(self) -> bool:
        return not self._conn.closed


class _Connection:
    __slots__ = ("sock", "h11", "peer", "request", "busy", "closed", "last_activity",
                 "request_started", "body_bytes", "linger_until", "linger_budget")

    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.request: Optional[Request] = None
        self.busy = False           # the application has the request and owes an answer
        self.closed = False
        self.last_activity = time.monotonic()
        self.request_started: Optional[float] = None
        self.body_bytes = 0
        self.linger_until: Optional[float] = None  # answered and closing: discarding input
        self.linger_budget = 0


class HttpServer(BaseComponent):
    """Serves ``app``: ``app.begin(request)`` when the headers are in (returns the body
    parser, or raises HttpError), ``app.handle(request, respond)`` when the body is in."""

    def __init__(self, app: Any, settings: Settings, scheduler: Scheduler):
        super().__init__(channel=f"rc_cts.http.{id(self):x}")
        s = settings
        self.app = app
        self.secure = s.secure
        self.max_body_bytes = s.max_body_bytes
        self.idle_timeout = s.idle_timeout_secs
        self.request_timeout = s.request_timeout_secs
        self.max_connections = s.max_connections
        self._scheduler = scheduler
        self._conns: Dict[Any, _Connection] = {}
        self.listener = Listener((s.server, s.port), secure=s.secure, certfile=s.certfile, keyfile=s.keyfile,
                                 bufsize=READ_SIZE, channel=self.channel)
        if s.secure:
            self.listener.ssl_context()  # a bad certificate fails at start, not per client
        self.listener.on_data = self._on_read
        self.listener.register(self)
        scheduler.call_every(SWEEP_INTERVAL, self._sweep)

    @property
    def host(self) -> str:
        return self.listener.host

    @property
    def port(self) -> int:
        return self.listener.port

    @property
    def url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.host}:{self.port}"

    @handler("ready")
    def _on_ready(self, server, bind) -> None:
        LOG.info("listening on %s", self.url)

    # -- connections -----------------------------------------------------------------------
    @handler("connect")
    def _on_connect(self, sock, *peer) -> None:
        if len(self._conns) >= self.max_connections:
            LOG.warning("refusing connection from %s: %d connections open", peer, len(self._conns))
            self.listener.close(sock)
            return
        self._conns[sock] = _Connection(sock, peer)

    @handler("disconnect")
    def _on_disconnect(self, sock) -> None:
        conn = self._conns.pop(sock, None)
        if conn is not None:
            conn.closed = True
            if conn.request is not None and conn.request.body is not None and not conn.busy:
                conn.request.body.discard()

    def _on_read(self, sock: Any, data: bytes) -> None:
        """Data from a client (the listener calls it in the loop thread as it reads)."""
        conn = self._conns.get(sock)
        if conn is None or conn.closed:
            return
        conn.last_activity = time.monotonic()
        if conn.linger_until is not None:
            conn.linger_budget -= len(data)
            if conn.linger_budget < 0:
                self._close(conn)
            return
        if conn.busy:
            # A pipelined request waits in h11's buffer until this one is answered.
            if len(conn.h11.trailing_data[0]) + len(data) > MAX_BUFFERED_WHILE_BUSY:
                self._close(conn)
                return
        elif conn.request_started is None:
            conn.request_started = conn.last_activity
        conn.h11.receive_data(data)
        if not conn.busy:
            self._process(conn)

    def _process(self, conn: _Connection) -> None:
        """Feed h11's events to the application until it needs more data or owes an answer."""
        while not conn.busy and not conn.closed:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._fail(conn, HttpError(exc.error_status_hint, f"bad HTTP request: {exc}"))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            try:
                if isinstance(event, h11.Request):
                    self._on_request_head(conn, event)
                elif isinstance(event, h11.Data):
                    req = conn.request
                    assert req is not None  # h11 gives Data only after a Request
                    conn.body_bytes += len(event.data)
                    if conn.body_bytes > self._limit(req):
                        raise self._too_large(req)
                    if req.body is not None:
                        req.body.feed(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._on_request_end(conn)
                elif isinstance(event, h11.ConnectionClosed):
                    self._close(conn)
                    return
            except HttpError as exc:
                self._fail(conn, exc)
                return

    def _on_request_head(self, conn: _Connection, event: h11.Request) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        req = Request(event.method.decode("ascii", "replace").upper(),
                      event.target.decode("latin-1"), headers, conn.peer, conn)
        conn.request = req
        conn.body_bytes = 0
        length = headers.get("content-length")
        try:
            req.body = self.app.begin(req)
        except HttpError as exc:
            if length not in (None, "0") or "transfer-encoding" in headers:
                raise  # do not read a body nobody wants: answer and close
            req.error = exc  # no body: answer at its end and keep the connection
        if length is not None and length.isdigit() and int(length) > self._limit(req):
            raise self._too_large(req)

    def _on_request_end(self, conn: _Connection) -> None:
        conn.busy = True
        conn.request_started = None
        req = conn.request
        assert req is not None  # h11 gives EndOfMessage only after a Request

        def respond(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> None:
            self._respond(conn, req, status, payload, headers)

        try:
            if req.error is not None:
                raise req.error
            self.app.handle(req, respond)
        except HttpError as exc:
            LOG.warning("%s %s %s from %s: %s", exc.status, req.method, req.path,
                        conn.peer[0] if conn.peer else "?", exc.message)
            self._respond(conn, req, exc.status, {"error": exc.message}, exc.headers)
        except Exception:
            LOG.exception("unhandled error answering %s %s", req.method, req.path)
            self._respond(conn, req, 500, {"error": "internal server error"})

    def _limit(self, req: Request) -> int:
        return req.max_body if req.max_body is not None else self.max_body_bytes

    def _too_large(self, req: Request) -> HttpError:
        return HttpError(413, f"request body is larger than the limit ({self._limit(req)} bytes)")

    # -- answers ---------------------------------------------------------------------------
    def _respond(self, conn: _Connection, req: Optional[Request], status: int, payload: Any,
                 headers: Optional[Dict[str, str]] = None, close: bool = False) -> None:
        if conn.closed or conn.request is not req:
            return  # the client left, or this request was answered already
        body = b"" if payload is None else json.dumps(payload).encode("utf-8")
        hdrs = [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]
        for k, v in (headers or {}).items():
            hdrs.append((k.encode("latin-1"), str(v).encode("latin-1")))
        if close:
            hdrs.append((b"Connection", b"close"))
        try:
            out = conn.h11.send(h11.Response(status_code=status, headers=hdrs,
                                             reason=STATUS_REASON.get(status, b"")))
            if body and (req is None or req.method != "HEAD"):
                out += conn.h11.send(h11.Data(data=body))
            out += conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._close(conn)
            return
        self.listener.send(conn.sock, out)
        conn.request = None
        conn.busy = False
        conn.last_activity = time.monotonic()
        if conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            conn.h11.start_next_cycle()
            if conn.h11.trailing_data[0]:
                conn.request_started = conn.last_activity
                self._process(conn)
        elif conn.h11.their_state is h11.DONE:
            self._close(conn)  # the client asked to close
        else:
            self._linger(conn)  # the request was not read to its end

    def _fail(self, conn: _Connection, exc: HttpError) -> None:
        """Answer a request the server cannot go on reading, then close the connection."""
        req = conn.request
        method = req.method if req else "-"
        path = req.path if req else "-"
        LOG.warning("%s %s %s from %s: %s", exc.status, method, path, conn.peer[0] if conn.peer else "?",
                    exc.message)
        if conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._respond(conn, req, exc.status, {"error": exc.message}, exc.headers, close=True)
        if req is not None and req.body is not None and not conn.busy:
            req.body.discard()
        self._linger(conn)

    def _linger(self, conn: _Connection) -> None:
        """Close once the answer is out, but first let a client that is still sending its
        body finish (within limits): closing at once resets the connection, and the client
        would see a broken pipe instead of our answer."""
        if conn.closed:
            return
        conn.linger_until = time.monotonic() + LINGER_SECS
        conn.linger_budget = LINGER_BYTES

    def _close(self, conn: _Connection) -> None:
        if not conn.closed:
            conn.closed = True
            self.listener.close(conn.sock)

    def _sweep(self) -> None:
        """Close connections that sit idle, or trickle a request slower than allowed."""
        now = time.monotonic()
        for conn in list(self._conns.values()):
            if conn.linger_until is not None and now > conn.linger_until:
                self._close(conn)
            if conn.busy or conn.closed or conn.linger_until is not None:
                continue
            if conn.request_started is not None and now - conn.request_started > self.request_timeout:
                self._fail(conn, HttpError(408, "request took too long to arrive"))
            elif now - conn.last_activity > self.idle_timeout:
                if conn.request_started is not None:
                    self._fail(conn, HttpError(408, "request timed out waiting for data"))
                else:
                    self._close(conn)
