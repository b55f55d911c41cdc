"""A local stand-in for the few SOAR REST endpoints resilient-circuits calls at start-up,
so searchers subclassing ResilientComponent (and the daemon) run without a SOAR server."""
from __future__ import annotations

import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ORG = {"name": "Test Org", "id": 201, "uuid": "00000000-0000-0000-0000-000000000201",
       "cloud_account": None, "enabled": True}
SESSION = {"csrf_token": "csrf", "user_id": 1, "user_fname": "Test", "user_lname": "User",
           "user_email": "test@example.com", "is_saml": False, "orgs": [ORG]}
CONST = {"server_version": {"major": 51, "minor": 0, "build_number": 0, "version": "51.0.0.0"}}


class _Handler(BaseHTTPRequestHandler):
    def _answer(self, status, payload, cookie=False):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", "JSESSIONID=standin; Path=/")
        self.end_headers()
        self.wfile.write(body)

    def _route(self):
        path = self.path.split("?", 1)[0]
        self.server.calls.append((self.command, path))
        if path == "/rest/session":
            return self._answer(200, SESSION, cookie=True)
        if path == f"/rest/orgs/{ORG['id']}":
            return self._answer(200, dict(ORG, actions_framework_enabled=True))
        if path == "/rest/const":
            return self._answer(200, CONST)
        if path.endswith("/fields") or path.endswith("/message_destinations"):
            return self._answer(200, [] if path.endswith("/fields") else {"entities": []})
        return self._answer(404, {"success": False, "message": f"not in the stand-in: {path}"})

    def do_GET(self):
        self._route()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._route()

    def log_message(self, *args):
        pass


class _StompStandIn:
    """Just enough of a STOMP 1.2 broker over TLS for resilient-circuits to connect:
    CONNECTED (no heart-beats) to CONNECT, RECEIPT where asked; everything else is ignored."""

    def __init__(self, ctx: ssl.SSLContext):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.ctx = ctx
        self.frames = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw):
        try:
            conn = self.ctx.wrap_socket(raw, server_side=True)
            buf = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
                while b"\x00" in buf:
                    frame, buf = buf.split(b"\x00", 1)
                    lines = frame.lstrip(b"\r\n").decode("utf-8", "replace").split("\n")
                    command, headers = lines[0].strip(), dict(
                        line.split(":", 1) for line in lines[1:] if ":" in line)
                    self.frames.append(command)
                    if command in ("CONNECT", "STOMP"):
                        conn.sendall(b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00")
                    if "receipt" in headers:
                        conn.sendall(f"RECEIPT\nreceipt-id:{headers['receipt']}\n\n\x00".encode())
                    if command == "DISCONNECT":
                        return
        except (OSError, ssl.SSLError):
            return
        finally:
            raw.close()

    def close(self):
        self._stop = True
        self.sock.close()


class SoarStandIn:
    """SOAR's REST API (HTTPS) and STOMP broker (TLS) on 127.0.0.1 with the given certificate;
    ``resilient_section()`` points resilient-circuits at them."""

    def __init__(self, certfile):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.calls = []
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(certfile))
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.stomp = _StompStandIn(ctx)

    @property
    def calls(self):
        return self.server.calls

    def resilient_section(self) -> str:
        return (f"[resilient]\nhost = 127.0.0.1\nport = {self.server.server_address[1]}\n"
                f"stomp_port = {self.stomp.port}\n"
                "org = Test Org\nemail = test@example.com\npassword = standin-password\n"
                "cafile = false\nmax_connection_retries = 1\nrequest_max_retries = 1\n")

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.stomp.close()
