"""Hostile and broken clients, through real sockets: the HTTP front answers what it can,
refuses the rest with a 4xx (or 503 when full), holds bounded memory, and keeps serving."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time

import pytest

from rc_cts.tools.client import Client
from .searchers import HitSearcher

GOOD = {"type": "net.uri", "value": "http://ok"}


def addr_of(svc):
    return svc.service.http.host, svc.service.http.port


def raw_post(body: bytes, path: str = "/cts/test", extra: bytes = b"") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s"
            % (path.encode(), len(body), extra, body))


def read_until_closed(sock: socket.socket, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def responses(data: bytes):
    """(status, JSON body) of each answer in ``data``, read by their Content-Length."""
    out = []
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        length = next(int(v) for k, _, v in (line.partition(b":") for line in lines[1:])
                      if k.lower() == b"content-length")
        out.append((int(lines[0].split()[1]), json.loads(rest[:length])))
        data = rest[length:]
    return out


def assert_serving(svc, client=None):
    r = (client or svc.client()).post("test", GOOD)
    assert r.status == 200 and r.json["hits"]


def eventually(check, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


# -- pipelining ----------------------------------------------------------------------------
def test_1000_pipelined_requests_on_one_socket_are_all_answered_in_order(start_service):
    svc = start_service([HitSearcher()], auth_user="soar", auth_password="s3cret")
    sock = socket.create_connection(addr_of(svc), timeout=10)
    requests = b"".join(b"OPTIONS /cts/test HTTP/1.1\r\nHost: x\r\nX-N: %d\r\n\r\n" % i for i in range(1000))
    sender = threading.Thread(target=sock.sendall, args=(requests,))
    sender.start()
    data = b""
    while data.count(b"HTTP/1.1 ") < 1000:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data.count(b'HTTP/1.1 ')} answers"
        data += chunk
    sender.join()
    assert data.count(b"HTTP/1.1 401 ") == 1000  # unauthenticated: every one refused, none dropped
    sock.sendall(b"OPTIONS /cts/test HTTP/1.1\r\nHost: x\r\nAuthorization: Basic c29hcjpzM2NyZXQ=\r\n\r\n")
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")  # and the connection still serves
    sock.close()


def test_pipelined_lookups_are_answered_in_order(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=10)
    bodies = [json.dumps({"type": "net.uri", "value": f"http://ok/{i}"}).encode() for i in range(200)]
    sock.sendall(b"".join(raw_post(b) for b in bodies))
    data = b""
    while data.count(b"HTTP/1.1 ") < 200:
        chunk = sock.recv(65536)
        assert chunk
        data += chunk
    answers = responses(data)
    assert [status for status, _ in answers] == [200] * 200
    found = [hit["props"][0]["value"] for _, body in answers for hit in body["hits"]]
    assert found == [f"http://ok/{i}" for i in range(200)]
    sock.close()


# -- connection exhaustion -----------------------------------------------------------------
def test_slowloris_and_tls_sockets_that_never_handshake_do_not_lock_out_a_good_client(start_service, certfile):
    limit = 100
    svc = start_service([HitSearcher()], secure="true", certfile=certfile, max_connections=limit)
    addr = addr_of(svc)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    slow = []
    for _ in range(limit + 200):  # handshaken, then a request head one header a while
        try:
            s = context.wrap_socket(socket.create_connection(addr, timeout=5))
            s.sendall(b"POST /cts/test HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        except OSError:
            pass  # made room for a newer one, or refused: what a flood gets
    raw = [socket.create_connection(addr, timeout=5) for _ in range(300)]  # never a ClientHello
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in slow:
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    pass
            time.sleep(0.5)

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    ok = 0
    try:
        client = Client(svc.url, timeout=2)
        for i in range(20):
            t0 = time.monotonic()
            try:
                r = client.post("test", {"type": "net.uri", "value": f"http://ok/{i}"})
                ok += r.status == 200 and bool(r.json["hits"]) and time.monotonic() - t0 < 2
            except OSError:
                pass
    finally:
        stop.set()
        t.join()
        for s in slow + raw:
            s.close()
    assert ok >= 19, f"{ok} of 20 lookups answered within 2 s"
    assert svc.service.http.connections <= limit


def test_a_tls_socket_that_never_handshakes_is_closed_within_the_header_timeout(start_service, certfile):
    svc = start_service([HitSearcher()], secure="true", certfile=certfile, header_timeout_secs=0.5)
    sock = socket.create_connection(addr_of(svc), timeout=5)
    sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then nothing
    t0 = time.monotonic()
    assert read_until_closed(sock) == b""
    assert time.monotonic() - t0 < 2
    assert eventually(lambda: svc.service.http.connections == 0)


def test_a_request_head_must_arrive_within_the_header_timeout(start_service):
    svc = start_service([HitSearcher()], header_timeout_secs=0.5)
    sock = socket.create_connection(addr_of(svc), timeout=5)
    sock.sendall(b"POST /cts/test HTTP/1.1\r\nHost: x\r\n")
    t0 = time.monotonic()
    for _ in range(10):
        time.sleep(0.1)
        try:
            sock.sendall(b"X-Slow: 1\r\n")
        except OSError:
            break
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ") and b'"error"' in answer
    assert time.monotonic() - t0 < 2


# -- smaller faults ------------------------------------------------------------------------
def test_a_half_closed_client_gets_its_answer(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=5)
    sock.sendall(raw_post(json.dumps(GOOD).encode()))
    sock.shutdown(socket.SHUT_WR)
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ") and b"hits" in answer


def test_connection_close_is_closed_once_answered(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=5)
    t0 = time.monotonic()
    sock.sendall(raw_post(json.dumps(GOOD).encode(), extra=b"Connection: close\r\n"))
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert time.monotonic() - t0 < 0.5


def test_a_bare_lf_chunked_body_is_refused_at_once(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=5)
    body = json.dumps(GOOD).encode()
    t0 = time.monotonic()
    sock.sendall(b"POST /cts/test HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n%x\n%s\n0\n\n" % (len(body), body))
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 400 ") and b"bare LF" in answer
    assert time.monotonic() - t0 < 1
    assert_serving(svc)


def test_gzip_transfer_encoding_gets_501_that_says_why(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=5)
    sock.sendall(b"POST /cts/test HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Transfer-Encoding: gzip\r\n\r\n")
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 501 ")
    error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
    assert "chunked" in error and "Content-Length" in error
    assert_serving(svc)


# -- bytes ---------------------------------------------------------------------------------
def test_answers_a_client_does_not_read_stay_bounded(start_service):
    svc = start_service([HitSearcher()])
    sock = socket.create_connection(addr_of(svc), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = b"OPTIONS /cts/test HTTP/1.1\r\nHost: x\r\n\r\n"
    sender = threading.Thread(target=lambda: _send_quietly(sock, request * 200_000))  # ~8 MB of requests
    sender.start()
    time.sleep(2)  # it sends, and reads nothing
    buffered = sum(c.transport.buffered for c in list(svc.service.http._conns))
    assert buffered <= 512 * 1024, f"{buffered} bytes of answers held for a client that does not read"
    sock.shutdown(socket.SHUT_RDWR)  # ends the sender's sendall too
    sock.close()
    sender.join(10)
    assert_serving(svc)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def test_200_connections_dribbling_5_mb_bodies_keep_memory_bounded(start_service):
    svc = start_service([HitSearcher()], max_body_mb=6, max_buffered_mb=64, request_timeout_secs=60)
    addr = addr_of(svc)
    before = rss_mb()
    size = 5 * 1024 * 1024
    socks = []
    for _ in range(200):
        s = socket.create_connection(addr, timeout=10)
        s.sendall(b"POST /cts/test HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % size)
        socks.append(s)
    chunk = b" " * (256 * 1024)
    peak = 0.0
    for _ in range(size // len(chunk) - 1):  # all but the last chunk: every body still arriving
        for s in list(socks):
            try:
                s.sendall(chunk)
            except OSError:
                socks.remove(s)  # refused (503) and closed
        peak = max(peak, rss_mb())
    assert peak - before < 300, f"resident memory grew by {peak - before:.0f} MB"
    assert svc.service.http.held_bytes <= 64 * 1024 * 1024
    for s in socks:
        s.close()
    assert eventually(lambda: svc.service.http.held_bytes == 0)
    assert_serving(svc)


# -- found in review: each failed before its fix -------------------------------------------
def test_clients_that_reset_after_sending_are_forgotten(start_service):
    import struct
    svc = start_service([HitSearcher()])
    http = svc.service.http
    for _ in range(200):
        s = socket.create_connection(addr_of(svc))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
        s.sendall(b"OPTIONS /cts/test HTTP/1.1\r\nHost: x\r\n\r\n")
        s.close()
    assert eventually(lambda: http.connections == 0)
    assert not http._evictable  # nothing kept that max_connections would count on
    assert_serving(svc)


def test_a_big_answer_with_connection_close_arrives_whole(start_service):
    svc = start_service([HitSearcher()], max_body_mb=20)
    value = "v" * (8 * 1024 * 1024)  # HitSearcher gives the value back in its hit
    sock = socket.create_connection(addr_of(svc), timeout=10)
    sock.sendall(raw_post(json.dumps({"type": "net.uri", "value": value}).encode(), extra=b"Connection: close\r\n"))
    time.sleep(3)  # the client reads late: past the linger time
    answer = read_until_closed(sock, timeout=10)
    status, body = responses(answer)[0]
    assert status == 200 and body["hits"][0]["props"][0]["value"] == value


def test_a_client_that_never_reads_its_answer_is_closed_after_the_idle_timeout(start_service):
    svc = start_service([HitSearcher()], idle_timeout_secs=1, max_body_mb=20)
    sock = socket.create_connection(addr_of(svc), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(raw_post(json.dumps({"type": "net.uri", "value": "v" * (8 * 1024 * 1024)}).encode()))
    assert eventually(lambda: svc.service.http.connections == 0, timeout=6)
    sock.close()


def test_an_accept_error_for_one_client_does_not_stop_the_listener(start_service, monkeypatch):
    import errno
    svc = start_service([HitSearcher()])
    listening = svc.service.http.listener.sock
    accept = socket.socket.accept
    failed = []

    def accept_once_failing(self):
        if self is listening and not failed:
            failed.append(True)
            accept(self)[0].close()
            raise OSError(errno.EPROTO, "Protocol error")  # accept(2): a pending network error
        return accept(self)

    monkeypatch.setattr(socket.socket, "accept", accept_once_failing)
    socket.create_connection(addr_of(svc)).close()
    assert eventually(lambda: bool(failed))
    assert_serving(svc)
