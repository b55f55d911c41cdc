"""A platform-side client for tests: talks to the service over real HTTP, as the SOAR platform does."""
from __future__ import annotations

import base64
import http.client
import json
import time
import uuid
from typing import Any, Dict, Optional, Tuple
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

    def options(self, service: str) -> Response:
        return self.request("OPTIONS", f"/{service}")

    def post(self, service: str, artifact: Any, file_bytes: Optional[bytes] = None,
             as_json: bool = False) -> Response:
        if as_json:
            return self.request("POST", f"/{service}", json.dumps(artifact).encode(),
                                {"Content-Type": "application/json"})
        body, headers = multipart(artifact, file_bytes)
        return self.request("POST", f"/{service}", body, headers)

    def get(self, service: str, rid: str) -> Response:
        return self.request("GET", f"/{service}/{rid}")

    def lookup(self, service: str, artifact: Any, file_bytes: Optional[bytes] = None,
               poll_secs: float = 0.05, max_polls: int = 400) -> Tuple[Response, int]:
        """POST, then GET while the answer is 303, as the platform does (with short waits)."""
        r = self.post(service, artifact, file_bytes)
        polls = 0
        while r.status == 303 and polls < max_polls:
            time.sleep(poll_secs)
            r = self.get(service, r.json["id"])
            polls += 1
        return r, polls
