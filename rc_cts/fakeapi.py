"""A provider's API for searcher tests, on a free 127.0.0.1 port, so that no test touches the
internet: each path answers as it is told, and every call is recorded with its time, headers
and body.  The ``fake_api`` fixture (rc_cts.testing) gives one, stopped after the test.

    api.answer("/check", 200, {"score": 90})                           # a JSON body
    api.answer("/check", 429, headers={"Retry-After": "2"}, times=1)   # once, then the previous
    api.route("/v1/ip", lambda call: (200, {...}) if call.headers.get("key") == KEY else (401, {}))
    api.calls("/check")  -> [Call(at, method, path, query, headers, body), ...]
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, List, Optional, Tuple, Union
from urllib.parse import parse_qs, urlsplit

MAX_BODY = 1024 * 1024


@dataclass
class Call:
    at: float
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]     # names in lower case
    method: str = "GET"
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> Dict[str, str]:
        """An application/x-www-form-urlencoded body, one value per field."""
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8", "replace")).items()}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    times: Optional[int] = None   # answered this many times, then dropped (None: for good)
    delay: float = 0.0


Route = Callable[[Call], Union[Reply, Tuple[Any, ...]]]  # -> Reply, or (status, body[, headers])


class FakeApi:
    def __init__(self) -> None:
        self._replies: Dict[str, List[Reply]] = {}
        self._routes: Dict[str, Route] = {}
        self._calls: List[Call] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._serve(self)

            do_POST = do_PUT = do_DELETE = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        Server = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 1024})  # bursts of clients
        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeApi":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, path: str, status: int = 200, body: Any = None, headers: Optional[Dict[str, str]] = None,
               times: Optional[int] = None, delay: float = 0.0) -> None:
        """Answer ``path`` so from now on; with ``times``, only that often, then as before."""
        with self._lock:
            self._replies.setdefault(path, []).append(Reply(status, body, headers or {}, times, delay))

    def route(self, path: str, handler: Route) -> None:
        """Answer ``path`` with ``handler(call)``: a Reply, or (status, body[, headers])."""
        with self._lock:
            self._routes[path] = handler

    def reset(self, path: str) -> None:
        with self._lock:
            self._replies.pop(path, None)
            self._routes.pop(path, None)

    def calls(self, path: Optional[str] = None) -> List[Call]:
        with self._lock:
            return [c for c in self._calls if path is None or c.path == path]

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        length = min(int(request.headers.get("Content-Length") or 0), MAX_BODY)
        call = Call(time.time(), parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in request.headers.items()}, request.command,
                    request.rfile.read(length) if length else b"")
        with self._lock:
            self._calls.append(call)
            replies = self._replies.get(parts.path, [])
            route = self._routes.get(parts.path)
            chosen: Optional[Reply] = replies[-1] if replies else None
            if chosen is not None and chosen.times is not None:
                chosen.times -= 1
                if chosen.times <= 0:
                    replies.remove(chosen)
        if chosen is not None:
            reply = chosen              # answer() replies come first, a route after them
        elif route is not None:
            answer = route(call)
            reply = answer if isinstance(answer, Reply) else Reply(*answer)
        else:
            reply = Reply(404, {"error": "no such path"})
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        if callable(body):
            body = body(call)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        if isinstance(body, bytes):
            reply.headers.setdefault("Content-Type", "text/plain")
        request.send_response(reply.status)
        for name, value in reply.headers.items():
            request.send_header(name, value)
        if "Content-Type" not in reply.headers:
            request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)
