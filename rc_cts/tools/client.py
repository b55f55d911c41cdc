"""A client that talks to a threat service over HTTP the way the SOAR platform does:
OPTIONS, multipart POST (artifact and optional file), then GET while the answer is 303.
Used by ``rc-cts lookup``, the pytest plugin, and the tests."""
from __future__ import annotations

import base64
import http.client
import json
import time
import uuid
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit


def multipart(artifact: Any, file_bytes: Optional[bytes] = None, filename: str = "sample.bin",
              raw_artifact: Optional[bytes] = None) -> Tuple[bytes, Dict[str, str]]:
    boundary = "----cts" + uuid.uuid4().hex
    art = raw_artifact if raw_artifact is not None else json.dumps(artifact).encode()
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"\r\n"
             f"Content-Type: application/json\r\n\r\n".encode() + art + b"\r\n"]
    if file_bytes is not None:
        parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                     f"filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                     .encode() + file_bytes + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class Response:
    """status, headers (lower-case names) and body; ``json`` decodes it."""

    def __init__(self, status: int, headers: Dict[str, str], raw: bytes):
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.raw[:200]!r}>"


class Client:
    """For ``base_url`` = ``http(s)://host:port/<urlbase>``; service names are relative to it."""

    def __init__(self, base_url: str, user: Optional[str] = None, password: Optional[str] = None,
                 timeout: float = 30):
        u = urlsplit(base_url)
        self.host, self.port, self.base = u.hostname, u.port, u.path.rstrip("/")
        self.https = u.scheme == "https"
        self.timeout = timeout
        self.auth = None
        if user is not None:
            self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def _conn(self):
        if self.https:
            import ssl
            return http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                               context=ssl._create_unverified_context())
        return http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None) -> Response:
        headers = dict(headers or {})
        if self.auth and "Authorization" not in headers:
            headers["Authorization"] = self.auth
        conn = self._conn()
        try:
            conn.request(method, self.base + path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    @staticmethod
    def _path(*parts: str) -> str:
        return "".join(f"/{p}" for p in parts if p)

    def options(self, service: str) -> Response:
        return self.request("OPTIONS", self._path(service))

    def post(self, service: str, artifact: Any, file_bytes: Optional[bytes] = None,
             as_json: bool = False) -> Response:
        if as_json:
            return self.request("POST", self._path(service), json.dumps(artifact).encode(),
                                {"Content-Type": "application/json"})
        body, headers = multipart(artifact, file_bytes)
        return self.request("POST", self._path(service), body, headers)

    def get(self, service: str, rid: str) -> Response:
        return self.request("GET", self._path(service, rid))

    def lookup(self, service: str, artifact: Any, file_bytes: Optional[bytes] = None,
               poll_secs: Optional[float] = 0.05, max_polls: int = 400,
               on_poll: Optional[Callable[[Response, float], None]] = None) -> Tuple[Response, int]:
        """POST, then GET while the answer is 303.  ``poll_secs`` is the wait between polls;
        ``None`` waits as the platform does, ``retry_secs`` capped at 5 s.  ``on_poll(response,
        wait)`` is called with each 303 (its hits so far) before that wait."""
        r = self.post(service, artifact, file_bytes)
        polls = 0
        while r.status == 303 and polls < max_polls:
            wait = poll_secs if poll_secs is not None else min(float(r.json.get("retry_secs", 5)), 5.0)
            if on_poll is not None:
                on_poll(r, wait)
            time.sleep(wait)
            r = self.get(service, r.json["id"])
            polls += 1
        return r, polls
