"""One accepted socket: non-blocking reads and buffered writes, its TLS handshake driven by
readiness (never by a busy loop), and a close that waits for the answer to be written."""
from __future__ import annotations

import enum
import logging
import socket
import ssl
import time
from collections import deque
from typing import Any, Deque, Optional, Protocol

from .netloop import READ, WRITE, NetLoop

LOG = logging.getLogger(__name__)

READ_SIZE = 65536
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Peer(Protocol):
    """The protocol on top of a transport (the HTTP connection)."""

    def on_open(self) -> None: ...             # usable: accepted, or its TLS handshake is done

    def on_data(self, data: bytes) -> None: ...

    def on_eof(self) -> None: ...              # the client will send nothing more (it may still read)

    def on_drained(self) -> None: ...          # everything written has left

    def on_closed(self) -> None: ...


class Phase(enum.Enum):
    HANDSHAKING = "handshaking"
    OPEN = "open"
    CLOSING = "closing"  # closes once what is buffered is written
    CLOSED = "closed"


class Transport:
    """Reads go to ``peer.on_data``; ``write`` sends now what the socket takes and keeps the
    rest (``buffered`` bytes) until the socket is writable again."""

    __slots__ = ("loop", "sock", "peer_address", "peer", "phase", "reading", "eof", "_out", "buffered",
                 "_shut_write", "last_progress")

    def __init__(self, loop: NetLoop, sock: socket.socket, peer_address: Any):
        self.loop = loop
        self.sock = sock
        self.peer_address = peer_address
        self.peer: Optional[Peer] = None
        self.phase = Phase.HANDSHAKING if isinstance(sock, ssl.SSLSocket) else Phase.OPEN
        self.reading = True
        self.eof = False
        self._out: Deque[bytes] = deque()
        self.buffered = 0
        self._shut_write = False
        self.last_progress = time.monotonic()  # when buffered bytes last left (or began to wait)

    @property
    def closed(self) -> bool:
        return self.phase is Phase.CLOSED

    def start(self, peer: Peer) -> None:
        self.peer = peer
        self._watch()
        if self.phase is Phase.OPEN:
            peer.on_open()

    # -- the loop's side -----------------------------------------------------------------
    def on_ready(self, readable: bool, writable: bool) -> None:
        if self.phase is Phase.HANDSHAKING:
            self._handshake()
            return
        if writable and self._out:
            self._flush()
        if readable and self.reading and self.phase is Phase.OPEN:
            self._read()

    def _handshake(self) -> None:
        assert isinstance(self.sock, ssl.SSLSocket)
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(READ)
            return
        except ssl.SSLWantWriteError:
            self._watch(WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            LOG.info("TLS handshake with %s failed: %s", self.peer_address[0], exc)
            self.abort()
            return
        self.phase = Phase.OPEN
        self._watch()
        assert self.peer is not None
        self.peer.on_open()

    def _read(self) -> None:
        sock = self.sock
        try:
            data = sock.recv(READ_SIZE)
            if isinstance(sock, ssl.SSLSocket):
                while data and sock.pending():  # what TLS decrypted already: epoll will not say so
                    data += sock.recv(sock.pending())
        except _WOULD_BLOCK:
            return
        except OSError:  # a reset; under TLS also an end without close_notify (SSLEOFError)
            self.abort()
            return
        assert self.peer is not None
        if data:
            self.peer.on_data(data)
        else:
            self.eof = True
            self.reading = False
            self._watch()
            self.peer.on_eof()

    def _flush(self) -> None:
        out = self._out
        while out:
            chunk = out[0]
            try:
                sent = self.sock.send(chunk)
            except _WOULD_BLOCK:
                break
            except OSError:
                self.abort()
                return
            self.buffered -= sent
            if sent:
                self.last_progress = time.monotonic()
            if sent < len(chunk):
                out[0] = chunk[sent:]
                break
            out.popleft()
        if out:
            return
        if self.phase is Phase.CLOSING:
            self.abort()
            return
        if self._shut_write:
            self._end_writing()
        self._watch()
        assert self.peer is not None
        self.peer.on_drained()

    # -- the peer's side -----------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.phase not in (Phase.OPEN, Phase.CLOSING) or not data:
            return
        if not self._out:
            try:
                sent = self.sock.send(data)
            except _WOULD_BLOCK:
                sent = 0  # TLS: the same bytes are offered again once writable
            except OSError:
                self.abort()
                return
            if sent == len(data):
                return
            data = data[sent:]
            self.last_progress = time.monotonic()
        self._out.append(data)
        self.buffered += len(data)
        self._watch()

    def shutdown_write(self) -> None:
        """Once what is buffered is written, tell the client there is nothing more (it sees
        the end of the answer at once) and go on reading: closing a socket with unread
        input resets it, and the client might lose the answer."""
        self._shut_write = True
        if not self._out:
            self._end_writing()

    def _end_writing(self) -> None:
        if isinstance(self.sock, ssl.SSLSocket):
            return  # TLS has no half-close without its own shutdown: closed when reading ends
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def pause_reading(self) -> None:
        if self.reading:
            self.reading = False
            self._watch()

    def resume_reading(self) -> None:
        if not self.reading and not self.eof:
            self.reading = True
            self._watch()

    def close(self) -> None:
        """Close once what is buffered has been written."""
        if self.phase in (Phase.CLOSING, Phase.CLOSED):
            return
        if not self._out or self.phase is Phase.HANDSHAKING:
            self.abort()
            return
        self.phase = Phase.CLOSING
        self.reading = False
        self._watch()

    def abort(self) -> None:
        """Close now, dropping what is buffered."""
        if self.phase is Phase.CLOSED:
            return
        self.phase = Phase.CLOSED
        self.loop.forget(self.sock)
        self._out.clear()
        self.buffered = 0
        try:
            self.sock.close()
        except OSError:
            pass
        if self.peer is not None:
            self.peer.on_closed()

    def _watch(self, handshake_wants: int = READ) -> None:
        if self.phase is Phase.CLOSED:
            return
        if self.phase is Phase.HANDSHAKING:
            events = handshake_wants
        else:
            events = (READ if self.reading and self.phase is Phase.OPEN else 0) | (WRITE if self._out else 0)
        self.loop.watch(self.sock, self, events)
