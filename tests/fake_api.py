"""A provider API for tests, on a free 127.0.0.1 port: each path answers as it is told
(a status, headers, a JSON body), and every call is recorded with its time and headers.

    api = FakeApi().start()
    api.answer("/check", 200, {"score": 90})
    api.answer("/check", 429, headers={"Retry-After": "2"}, times=1)   # once, then the previous
    api.calls("/check")  -> [Call(at, path, query, headers), ...]
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit


@dataclass
class Call:
    at: float
    path: str
    query: Dict[str, str]
    headers: Dict[str, str]


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: Dict[str, str] = field(default_factory=dict)
    times: Optional[int] = None   # answered this many times, then dropped (None: for good)
    delay: float = 0.0


class FakeApi:
    def __init__(self) -> None:
        self._replies: Dict[str, List[Reply]] = {}
        self._calls: List[Call] = []
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api._serve(self)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
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

    def reset(self, path: str) -> None:
        with self._lock:
            self._replies.pop(path, None)

    def calls(self, path: Optional[str] = None) -> List[Call]:
        with self._lock:
            return [c for c in self._calls if path is None or c.path == path]

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        call = Call(time.time(), parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in request.headers.items()})
        with self._lock:
            self._calls.append(call)
            replies = self._replies.get(parts.path, [])
            reply = replies[-1] if replies else Reply(404, {"error": "no such path"})
            if reply.times is not None:
                reply.times -= 1
                if reply.times <= 0:
                    replies.remove(reply)
        if reply.delay:
            time.sleep(reply.delay)
        body = reply.body
        if callable(body):
            body = body(call)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        request.send_response(reply.status)
        for name, value in reply.headers.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(raw)))
        request.end_headers()
        request.wfile.write(raw)
