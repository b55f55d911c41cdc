"""An HTTP/1.1 server as a circuits component, for the threat service's few endpoints.

Every byte from the network is hostile until parsed, so each connection is an explicit
state machine (``ConnState``) with limits in bytes and in time at each state:

* every accepted socket counts against ``max_connections``, TLS ones before their
  handshake; at the limit the oldest connection that has not sent a complete request
  head is closed to make room, and if there is none the new one gets 503;
* a TLS handshake and a request head must arrive within ``header_timeout_secs``, a whole
  request within ``request_timeout_secs``; a connection idle for ``idle_timeout_secs``
  is closed;
* request bytes held in memory are capped per request (``max_body_mb``) and in total
  (``max_buffered_mb``, 503 beyond it); answers a client does not read stop its
  connection from being read (backpressure) instead of piling up;
* pipelined requests are answered in order, by a loop (never by recursion), a batch per
  loop turn.

``h11`` parses and frames; the application gets ``begin(request)`` when a head is in
(it returns a body parser, fed as the body streams in) and ``handle(request, respond)``
when the body is in, and answers whenever it likes.
"""
from __future__ import annotations

import enum
import json
import logging
import socket
import time
from http import HTTPStatus
from typing import Any, Dict, NamedTuple, Optional

import h11
from circuits import BaseComponent, handler

from .errors import HttpError
from .listener import Listener
from .netloop import NetLoop
from .transport import Phase, Transport
from ..config.settings import Settings
from ..scheduler import Scheduler

LOG = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_PIPELINED_BYTES = 64 * 1024   # unread requests held while one is answered; then reading pauses
PIPELINE_BATCH = 32               # requests of one connection answered per loop turn
WRITE_HIGH_WATER = 256 * 1024     # answers not yet taken by the client; then reading pauses
LINGER_SECS = 2.0                 # after refusing a request, read what the client still sends
LINGER_BYTES = 8 * 1024 * 1024    # ...for this long and this much, so it can read the answer
SWEEP_INTERVAL = 0.5


class ConnState(enum.Enum):
    HANDSHAKING = "handshaking"   # TLS: counted, not yet speaking HTTP
    IDLE = "idle"                 # between requests
    HEAD = "head"                 # a request head is arriving
    BODY = "body"                 # its body is arriving
    ANSWERING = "answering"       # the application has the request and owes an answer
    LINGERING = "lingering"       # answered and closing: what the client still sends is dropped
    CLOSED = "closed"


# Connections that may be closed to make room for a new one: nothing of theirs is in progress.
EVICTABLE = frozenset({ConnState.HANDSHAKING, ConnState.IDLE, ConnState.HEAD})


class RawBody(NamedTuple):
    """An answer's body sent as it is, with its own Content-Type (the /metrics text); any other
    payload is sent as JSON."""
    data: bytes
    content_type: str


class Request:
    """One HTTP request as the application sees it."""

    __slots__ = ("method", "target", "path", "headers", "peer", "body", "max_body", "context", "error",
                 "_conn")

    def __init__(self, method: str, target: str, headers: Dict[str, str], peer: Any, conn: "Connection"):
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
        return self._conn.state is not ConnState.CLOSED


class Connection:
    """One client: its transport, its h11 state, and where it stands (``state``, ``since``)."""

    __slots__ = ("server", "transport", "peer", "h11", "state", "since", "last_activity", "request",
                 "request_started", "body_bytes", "held", "linger_until", "linger_budget", "processing",
                 "write_blocked", "accepted", "scheduled")

    def __init__(self, server: "HttpServer", transport: Transport):
        now = time.monotonic()
        self.server = server
        self.transport = transport
        self.peer = transport.peer_address
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER_BYTES)
        self.state = ConnState.HANDSHAKING if transport.phase is Phase.HANDSHAKING else ConnState.IDLE
        self.accepted = now
        self.since = now            # when it entered its state
        self.last_activity = now
        self.request: Optional[Request] = None
        self.request_started = now
        self.body_bytes = 0
        self.held = 0               # request bytes the body parser holds in memory
        self.linger_until = 0.0
        self.linger_budget = 0
        self.processing = False     # the request loop runs for it now
        self.write_blocked = False  # answers wait for the client to read them
        self.scheduled = False      # a later loop turn goes on with its pipelined requests

    # Peer: what the transport tells
    def on_open(self) -> None:
        self.server._on_open(self)

    def on_data(self, data: bytes) -> None:
        self.server._on_data(self, data)

    def on_eof(self) -> None:
        self.server._on_eof(self)

    def on_drained(self) -> None:
        self.server._on_drained(self)

    def on_closed(self) -> None:
        self.server._on_closed(self)


class HttpServer(BaseComponent):
    """Serves ``app``: ``app.begin(request)`` when the headers are in (returns the body
    parser, or raises HttpError), ``app.handle(request, respond)`` when the body is in."""

    def __init__(self, app: Any, settings: Settings, scheduler: Scheduler):
        super().__init__(channel=f"rc_cts.http.{id(self):x}")
        s = settings
        self.app = app
        self.secure = s.secure
        self.max_body_bytes = s.max_body_bytes
        self.max_buffered_bytes = s.max_buffered_bytes
        self.idle_timeout = s.idle_timeout_secs
        self.header_timeout = s.header_timeout_secs
        self.request_timeout = s.request_timeout_secs
        self.max_connections = s.max_connections
        self._scheduler = scheduler
        self._conns: Dict[Connection, None] = {}
        self._evictable: Dict[Connection, None] = {}  # oldest first: the next one to close for room
        self.held_bytes = 0  # request bytes held in memory by every connection
        self.loop = NetLoop().register(self)
        self.listener = Listener(self.loop, (s.server, s.port), self._on_accept, scheduler.call_later,
                                 certfile=s.certfile if s.secure else None, keyfile=s.keyfile)
        self._refusal = _refusal_bytes()
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

    @property
    def connections(self) -> int:
        return len(self._conns)

    @handler("started", channel="*")
    def _on_started(self, component) -> None:
        if component is self.root:
            self.listener.start()
            LOG.info("listening on %s", self.url)

    @handler("stopped", channel="*")
    def _on_stopped(self, component) -> None:
        if component is self.root:
            self.listener.stop_accepting()
            for conn in list(self._conns):
                conn.transport.abort()

    # -- connections -----------------------------------------------------------------------
    def _on_accept(self, sock: socket.socket, peer: Any) -> None:
        if len(self._conns) >= self.max_connections and not self._evict_one():
            LOG.warning("refusing a connection from %s: %d connections open, none idle",
                        peer[0] if peer else "?", len(self._conns))
            refused = Transport(self.loop, sock, peer)
            if refused.phase is Phase.OPEN:  # a TLS client cannot read an answer before its handshake
                refused.write(self._refusal)
            refused.close()
            return
        transport = Transport(self.loop, sock, peer)
        conn = Connection(self, transport)
        self._conns[conn] = None
        self._evictable[conn] = None
        transport.start(conn)

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest without sending a request head."""
        while self._evictable:
            conn = next(iter(self._evictable))
            if conn.state is ConnState.CLOSED:  # cannot be here (see _set_state); never loop on it
                del self._evictable[conn]
                continue
            LOG.info("closing a %s connection from %s to make room", conn.state.value,
                     conn.peer[0] if conn.peer else "?")
            conn.transport.abort()
            return True
        return False

    def _set_state(self, conn: Connection, state: ConnState) -> None:
        if conn.state is ConnState.CLOSED:
            return  # closed while answering (a write failed): it stays closed, and out of the tables
        conn.state = state
        conn.since = time.monotonic()
        self._evictable.pop(conn, None)
        if state in EVICTABLE:
            self._evictable[conn] = None  # to the end: now the newest

    def _on_open(self, conn: Connection) -> None:
        if conn.state is ConnState.HANDSHAKING:
            self._set_state(conn, ConnState.IDLE)

    def _on_closed(self, conn: Connection) -> None:
        was = conn.state
        self._conns.pop(conn, None)
        self._evictable.pop(conn, None)
        conn.state = ConnState.CLOSED
        self._release(conn)
        req = conn.request
        if req is not None and req.body is not None and was is not ConnState.ANSWERING:
            req.body.discard()  # a body cut off: nothing it wrote stays behind

    def _on_eof(self, conn: Connection) -> None:
        """The client half-closed: answer what it sent, then close."""
        if conn.state is ConnState.LINGERING:
            conn.transport.close()  # it sends nothing more: close once the answer is out
            return
        if conn.state in (ConnState.IDLE, ConnState.HANDSHAKING) and not conn.h11.trailing_data[0]:
            conn.transport.close()
            return
        conn.h11.receive_data(b"")
        self._process(conn)

    def _on_drained(self, conn: Connection) -> None:
        if conn.write_blocked:
            conn.write_blocked = False
            conn.transport.resume_reading()
            self._process(conn)

    def _on_data(self, conn: Connection, data: bytes) -> None:
        conn.last_activity = time.monotonic()
        if conn.state is ConnState.LINGERING:
            conn.linger_budget -= len(data)
            if conn.linger_budget < 0:
                conn.transport.close()
            return
        if conn.state is ConnState.IDLE:
            self._set_state(conn, ConnState.HEAD)
            conn.request_started = conn.last_activity
        conn.h11.receive_data(data)
        if conn.state is ConnState.ANSWERING or conn.write_blocked or conn.scheduled:
            # not parsed now: bound what waits (h11's trailing_data copies its buffer, so only here)
            if len(conn.h11.trailing_data[0]) > MAX_PIPELINED_BYTES:
                conn.transport.pause_reading()  # resumed once h11 needs data again
            return
        self._process(conn)

    # -- requests --------------------------------------------------------------------------
    def _process(self, conn: Connection) -> None:
        """Feed h11's events to the application until it needs more data or owes an answer.
        An answer given at once comes back here through ``_respond``, which only sets the
        state: this loop goes on to the next pipelined request, so nothing recurses."""
        if conn.processing:
            return
        conn.processing = True
        answered = 0
        try:
            while conn.state not in (ConnState.ANSWERING, ConnState.LINGERING, ConnState.CLOSED):
                if conn.write_blocked:
                    conn.transport.pause_reading()
                    return
                if answered >= PIPELINE_BATCH:  # let the other connections have this turn
                    self._schedule(conn)
                    return
                try:
                    event = conn.h11.next_event()
                except h11.RemoteProtocolError as exc:
                    self._fail(conn, HttpError(exc.error_status_hint, _protocol_error(exc)))
                    return
                if event is h11.NEED_DATA:
                    self._check_framing(conn)
                    conn.transport.resume_reading()
                    return
                if event is h11.PAUSED:
                    return
                try:
                    if isinstance(event, h11.Request):
                        self._on_request_head(conn, event)
                    elif isinstance(event, h11.Data):
                        self._on_body_data(conn, event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        answered += 1
                        self._on_request_end(conn)
                    elif isinstance(event, h11.ConnectionClosed):
                        conn.transport.close()
                        return
                except HttpError as exc:
                    self._fail(conn, exc)
                    return
                except Exception:  # a bug: this request is lost, the others are served
                    LOG.exception("unhandled error reading a request from %s", conn.peer[0] if conn.peer else "?")
                    self._fail(conn, HttpError(500, "internal server error"))
                    return
        finally:
            conn.processing = False

    def _schedule(self, conn: Connection) -> None:
        """Go on with this connection's pipelined requests in the next loop turn (once)."""
        if not conn.scheduled:
            conn.scheduled = True
            self._scheduler.call_later(0, self._resume, conn)

    def _resume(self, conn: Connection) -> None:
        conn.scheduled = False
        self._process(conn)

    def _check_framing(self, conn: Connection) -> None:
        """h11 waits for a CRLF that a bare-LF chunked body never sends: refuse it now."""
        if conn.state is ConnState.BODY and conn.request is not None \
                and "transfer-encoding" in conn.request.headers:
            pending = conn.h11.trailing_data[0]
            at = pending.find(b"\n")
            if at == 0 or (at > 0 and pending[at - 1] != 0x0D):
                self._fail(conn, HttpError(400, "chunked body lines must end with CRLF, not a bare LF"))

    def _on_request_head(self, conn: Connection, event: h11.Request) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
        req = Request(event.method.decode("ascii", "replace").upper(),
                      event.target.decode("latin-1"), headers, conn.peer, conn)
        conn.request = req
        conn.body_bytes = 0
        self._set_state(conn, ConnState.BODY)
        length = headers.get("content-length")
        try:
            req.body = self.app.begin(req)
        except HttpError as exc:
            if length not in (None, "0") or "transfer-encoding" in headers:
                raise  # do not read a body nobody wants: answer and close
            req.error = exc  # no body: answer at its end and keep the connection
        if length is not None and length.isdigit() and int(length) > self._limit(req):
            raise self._too_large(req)

    def _on_body_data(self, conn: Connection, data: bytes) -> None:
        req = conn.request
        assert req is not None  # h11 gives Data only after a Request
        conn.body_bytes += len(data)
        if conn.body_bytes > self._limit(req):
            raise self._too_large(req)
        if req.body is not None:
            req.body.feed(data)
            held = req.body.held
            self.held_bytes += held - conn.held
            conn.held = held
            if self.held_bytes > self.max_buffered_bytes:
                raise HttpError(503, "the server holds too many request bytes: try again shortly",
                                {"Retry-After": "1"})

    def _release(self, conn: Connection) -> None:
        self.held_bytes -= conn.held
        conn.held = 0

    def _on_request_end(self, conn: Connection) -> None:
        self._set_state(conn, ConnState.ANSWERING)
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
        finally:
            self._release(conn)  # the body is parsed: the application holds what it keeps

    def _limit(self, req: Request) -> int:
        return req.max_body if req.max_body is not None else self.max_body_bytes

    def _too_large(self, req: Request) -> HttpError:
        return HttpError(413, f"request body is larger than the limit ({self._limit(req)} bytes)")

    # -- answers ---------------------------------------------------------------------------
    def _respond(self, conn: Connection, req: Optional[Request], status: int, payload: Any,
                 headers: Optional[Dict[str, str]] = None, close: bool = False) -> None:
        if conn.state is ConnState.CLOSED or conn.request is not req:
            return  # the client left, or this request was answered already
        try:
            if isinstance(payload, RawBody):
                body, content_type = payload.data, payload.content_type.encode("latin-1")
            else:
                body = b"" if payload is None else json.dumps(payload).encode("utf-8")
                content_type = b"application/json"
            extra = [(k.encode("latin-1"), str(v).encode("latin-1")) for k, v in (headers or {}).items()]
        except (TypeError, ValueError):  # a bug in what the application answers: still an answer
            LOG.exception("cannot encode the answer to %s %s", req.method if req else "-", req.path if req else "-")
            status, body, content_type, extra = 500, b'{"error": "internal server error"}', b"application/json", []
        hdrs = [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode()), *extra]
        if close:
            hdrs.append((b"Connection", b"close"))
        try:
            out = conn.h11.send(h11.Response(status_code=status, headers=hdrs, reason=_reason(status)))
            if body and (req is None or req.method != "HEAD"):
                out += conn.h11.send(h11.Data(data=body))
            out += conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            conn.transport.abort()
            return
        conn.transport.write(out)
        conn.request = None
        if conn.state is ConnState.CLOSED:
            return  # the write found the client gone
        conn.last_activity = time.monotonic()
        if conn.transport.buffered > WRITE_HIGH_WATER:
            conn.write_blocked = True  # the client does not read: read nothing more until it does
        ours, theirs = conn.h11.our_state, conn.h11.their_state
        if ours is h11.DONE and theirs is h11.DONE:
            conn.h11.start_next_cycle()
            pending = bool(conn.h11.trailing_data[0])
            self._set_state(conn, ConnState.HEAD if pending else ConnState.IDLE)
            conn.request_started = conn.last_activity
            if pending and not conn.processing:  # pipelined: the next turn answers it
                self._schedule(conn)
            elif conn.transport.eof and not pending:
                conn.transport.close()
        else:  # one side asked to close, or the request was not read to its end
            self._linger(conn)

    def _fail(self, conn: Connection, exc: HttpError) -> None:
        """Answer a request the server cannot go on reading, then close the connection."""
        req = conn.request
        method = req.method if req else "-"
        path = req.path if req else "-"
        LOG.warning("%s %s %s from %s: %s", exc.status, method, path, conn.peer[0] if conn.peer else "?",
                    exc.message)
        if conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._respond(conn, req, exc.status, {"error": exc.message}, exc.headers, close=True)
        if req is not None and req.body is not None and conn.state is not ConnState.ANSWERING:
            req.body.discard()
        self._release(conn)
        self._linger(conn)

    def _linger(self, conn: Connection) -> None:
        """Close once the answer is out: half-close at once, so the client sees its end, then
        drop what it still sends (within limits) until it closes or LINGER_SECS pass.
        Closing with unread input resets the connection, and the client could lose the answer."""
        if conn.state is ConnState.CLOSED:
            return
        self._set_state(conn, ConnState.LINGERING)
        conn.linger_until = time.monotonic() + LINGER_SECS
        conn.linger_budget = LINGER_BYTES
        conn.transport.shutdown_write()
        conn.transport.resume_reading()

    def _sweep(self) -> None:
        """Close connections that handshake, send a head or a request too slowly, or sit idle."""
        now = time.monotonic()
        for conn in list(self._conns):
            state = conn.state
            transport = conn.transport
            if transport.buffered:  # answers waiting for the client to read them
                if now - transport.last_progress > self.idle_timeout:
                    LOG.info("closing a connection from %s: it has not read its answers for %ss",
                             conn.peer[0] if conn.peer else "?", self.idle_timeout)
                    transport.abort()
                continue  # no head or body timeout while it is the client that does not read
            if state is ConnState.LINGERING:
                if now > conn.linger_until:
                    transport.abort()
            elif state is ConnState.HANDSHAKING:
                if now - conn.since > self.header_timeout:
                    LOG.info("TLS handshake from %s took over %ss: closed", conn.peer[0], self.header_timeout)
                    conn.transport.abort()
            elif state is ConnState.HEAD:
                limit = min(self.header_timeout, self.request_timeout)
                if now - conn.since > limit:
                    self._fail(conn, HttpError(408, f"request head not received within {limit}s"))
            elif state is ConnState.BODY:
                if now - conn.request_started > self.request_timeout:
                    self._fail(conn, HttpError(408, "request took too long to arrive"))
                elif now - conn.last_activity > self.idle_timeout:
                    self._fail(conn, HttpError(408, "request timed out waiting for data"))
            elif state is ConnState.IDLE:
                if now - conn.last_activity > self.idle_timeout:
                    conn.transport.close()


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _protocol_error(exc: h11.RemoteProtocolError) -> str:
    if exc.error_status_hint == 501:
        return (f"bad HTTP request: {exc}; only chunked Transfer-Encoding is supported "
                "(send the body as it is, with a Content-Length)")
    return f"bad HTTP request: {exc}"


def _refusal_bytes() -> bytes:
    """The whole answer given to a connection over the limit."""
    body = json.dumps({"error": "too many connections: try again shortly"}).encode()
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.next_event()
    return (conn.send(h11.Response(status_code=503, reason=b"Service Unavailable", headers=[
        (b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode()),
        (b"Retry-After", b"1"), (b"Connection", b"close")])) + conn.send(h11.Data(data=body))
        + conn.send(h11.EndOfMessage()))
