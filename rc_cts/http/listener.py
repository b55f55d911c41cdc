"""The one module that touches circuits' private attributes: the listening socket's layer.

circuits' ``TCPServer`` has no public hooks for what a server facing hostile clients
needs: its TLS handshake blocks the loop, its TLS reads leave data in the TLS
buffer (large HTTPS bodies hang), and it polls with ``select`` (which stalls near
1,100 sockets).  So this subclass overrides its private socket methods
(``_read``, ``_write``, ``_do_handshake``) and uses its private state (``_sock``,
``_clients``, ``_buffers``, ``_bufsize``, ``_poller``, ``_close``,
``_on_accept_done``).  ``tests/test_circuits_glue.py`` fails when a circuits
release changes any of them; nothing else in rc_cts reads circuits' internals.
"""
from __future__ import annotations

import logging
import ssl
import time
from typing import Any, Callable, Optional

from circuits import handler
from circuits.core.pollers import BasePoller, EPoll
from circuits.core.utils import findcmp
from circuits.net.events import read as read_event, ready
from circuits.net.sockets import TCPServer

LOG = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0


class Listener(TCPServer):
    """circuits' TCPServer, with a TLS handshake that never blocks the loop and
    reads that drain the TLS buffer (bodies larger than one read hang otherwise),
    and epoll rather than select (which stalls near 1,100 sockets).  Data read is
    handed to ``on_data`` if set, else fired as circuits' ``read`` event."""

    on_data: Optional[Callable[[Any, bytes], None]] = None

    @handler("registered", "started", channel="*", override=True)
    def _on_registered_or_started(self, component, manager=None):
        if self._poller is not None or component is not self:
            return
        poller = findcmp(self.root, BasePoller)
        if poller is None:
            poller = EPoll().register(self)
        self._poller = poller
        poller.addReader(self, self._sock)
        self.fire(ready(self, (self.host, self.port)))

    def _read(self, sock):
        if sock not in self._clients:
            return
        try:
            data = sock.recv(self._bufsize)
            if isinstance(sock, ssl.SSLSocket):
                while data and sock.pending():
                    data += sock.recv(sock.pending())
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        except OSError:
            self._close(sock)
            return
        if not data:
            self.close(sock)
        elif self.on_data is not None:
            self.on_data(sock, data)  # straight to the HTTP server: one circuits event less per read
        else:
            self.fire(read_event(sock, data))

    def _write(self, sock, data):
        if sock not in self._clients:
            return
        try:
            sent = sock.send(data)
            if sent < len(data):
                self._buffers[sock].appendleft(data[sent:])
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            self._buffers[sock].appendleft(data)
        except OSError:
            self._close(sock)

    def _do_handshake(self, sock, fire_connect_event=True):
        context = self.ssl_context()
        try:
            tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError:
            sock.close()
            return
        tls.setblocking(False)
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT
        while True:
            try:
                tls.do_handshake()
                break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if time.monotonic() > deadline:
                    LOG.info("TLS handshake timed out")
                    tls.close()
                    return
                yield
            except (ssl.SSLError, OSError) as exc:
                LOG.info("TLS handshake failed: %s", exc)
                tls.close()
                return
        self._on_accept_done(tls, fire_connect_event)

    def send(self, sock, data: bytes) -> None:
        """Write ``data`` now if the socket takes it (an answer is small): circuits' ``write``
        waits for the poller to report the socket writable, a loop turn and two epoll changes
        per answer.  What the socket does not take, or anything behind earlier data, is left
        to circuits' buffered write, in order."""
        if sock in self._clients and not self._buffers[sock] and not isinstance(sock, ssl.SSLSocket):
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._close(sock)
                return
            data = data[sent:]
            if not data:
                return
        self.write(sock, data)

    def stop_accepting(self) -> None:
        """Close the listening socket; the connections open now are still served."""
        if self._sock is not None:
            self._close(self._sock)

    def ssl_context(self) -> ssl.SSLContext:
        context = getattr(self, "_context", None)
        if context is None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.certfile, self.keyfile)
            self._context = context
        return context
