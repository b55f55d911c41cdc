"""The listening socket: accepts every waiting client in one go and hands each over at once,
TLS ones before their handshake, so that every socket is counted from its first moment."""
from __future__ import annotations

import errno
import logging
import socket
import ssl
from typing import Any, Callable, Optional, Tuple

from .netloop import READ, NetLoop

LOG = logging.getLogger(__name__)

ACCEPT_BATCH = 256           # clients taken per loop turn, so a flood cannot hold the loop
BACKLOG = 1024
OUT_OF_FDS_PAUSE_SECS = 0.1  # EMFILE: the socket stays readable, so stop asking for a moment
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Listener:
    """``on_accept(sock, peer)`` for each client; ``sock`` is non-blocking and, with TLS,
    wrapped but not yet handshaken."""

    def __init__(self, loop: NetLoop, bind: Tuple[str, int], on_accept: Callable[[socket.socket, Any], None],
                 call_later: Callable[..., Any], certfile: Optional[str] = None,
                 keyfile: Optional[str] = None):
        self._loop = loop
        self._on_accept = on_accept
        self._call_later = call_later
        self.tls: Optional[ssl.SSLContext] = None
        if certfile:  # a bad certificate fails at start, not per client
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(certfile, keyfile)
        try:
            self.sock: Optional[socket.socket] = socket.create_server(bind, backlog=BACKLOG)
        except OSError as exc:  # name what could not be bound: the CLI shows this line alone
            raise OSError(exc.errno, f"cannot listen on {bind[0]}:{bind[1]}: {exc.strerror or exc}") from None
        self.sock.setblocking(False)
        self.host, self.port = self.sock.getsockname()[:2]

    def start(self) -> None:
        if self.sock is not None:
            self._loop.watch(self.sock, self, READ)

    def on_ready(self, readable: bool, writable: bool) -> None:
        for _ in range(ACCEPT_BATCH):
            if self.sock is None:
                return
            try:
                sock, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    LOG.warning("cannot accept connections: %s; pausing for %ss", exc, OUT_OF_FDS_PAUSE_SECS)
                    self._loop.watch(self.sock, self, 0)
                    self._call_later(OUT_OF_FDS_PAUSE_SECS, self.start)
                    return
                LOG.info("accept failed: %s", exc)  # the network's error for that client (accept(2))
                continue
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.tls is not None:  # an end without close_notify must not pass for one
                    sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False,
                                                suppress_ragged_eofs=False)
                self._on_accept(sock, peer)
            except Exception:  # that client's setup failed: the others are still accepted
                LOG.exception("could not set up a connection from %s", peer[0] if peer else "?")
                sock.close()

    def abort(self) -> None:
        """The loop's last resort if ``on_ready`` raised (it does not): keep listening."""

    def stop_accepting(self) -> None:
        """Close the listening socket; the connections open now are still served."""
        if self.sock is not None:
            self._loop.forget(self.sock)
            self.sock.close()
            self.sock = None
