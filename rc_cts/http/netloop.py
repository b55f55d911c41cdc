"""The engine's poller: waits for sockets with ``selectors`` and calls their owners directly.

circuits' pollers fire one circuits event per readable socket and keep sockets in lists
(``in`` costs a scan per call); its ``TCPServer`` blocks the loop in TLS handshakes,
cannot count a connection before its handshake, and has no backpressure.  This
component takes the poller's place through circuits' public contract for one: a
``generate_events`` handler that waits at most ``event.time_left`` and a ``resume()``
that ends the wait when another thread fires an event.  Nothing here touches circuits'
private attributes.
"""
from __future__ import annotations

import logging
import selectors
import socket
from typing import Dict, Protocol

from circuits import BaseComponent, handler

LOG = logging.getLogger(__name__)

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE


class Watcher(Protocol):
    """What owns a watched socket: told when it is ready, and closed if that fails."""

    def on_ready(self, readable: bool, writable: bool) -> None: ...

    def abort(self) -> None: ...


class NetLoop(BaseComponent):
    """Calls ``watcher.on_ready`` for each ready socket, in the engine thread."""

    def __init__(self) -> None:
        super().__init__(channel=f"rc_cts.netloop.{id(self):x}")
        self._selector = selectors.DefaultSelector()
        self._events: Dict[socket.socket, int] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, READ, None)

    def watch(self, sock: socket.socket, watcher: Watcher, events: int) -> None:
        """Wait for ``events`` (READ | WRITE) on ``sock``; 0 waits for nothing."""
        current = self._events.get(sock, 0)
        if events == current:
            return
        if not current:
            self._selector.register(sock, events, watcher)
        elif not events:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, events, watcher)
        if events:
            self._events[sock] = events
        else:
            del self._events[sock]

    def forget(self, sock: socket.socket) -> None:
        """Before the socket is closed."""
        if self._events.pop(sock, 0):
            try:
                self._selector.unregister(sock)
            except (KeyError, ValueError):
                pass

    @property
    def watched(self) -> int:
        return len(self._events)

    @handler("generate_events", priority=-9)
    def _on_generate_events(self, event) -> None:
        event.stop()  # the one component of the engine that waits, as circuits' pollers do
        timeout = event.time_left
        try:
            ready = self._selector.select(None if timeout < 0 else timeout)
        except InterruptedError:
            return
        for key, mask in ready:
            watcher = key.data
            if watcher is None:
                self._drain_wakeups()
                continue
            try:
                watcher.on_ready(bool(mask & READ), bool(mask & WRITE))
            except Exception:  # one broken connection must not stop the loop
                LOG.exception("error serving a connection: closing it")
                watcher.abort()

    def resume(self) -> None:
        """circuits calls it (from any thread) when an event is fired during the wait."""
        try:
            self._wake_w.send(b"\0")
        except OSError:  # full (a wake-up is pending anyway) or closed at stop
            pass

    def _drain_wakeups(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    @handler("stopped", channel="*", priority=-10)
    def _on_stopped(self, component) -> None:
        if component is self.root:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
