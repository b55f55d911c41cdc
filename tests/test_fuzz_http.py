"""Hypothesis fuzzing of the whole request surface, as raw bytes over a socket, against one real
server: request heads, JSON bodies, multipart bodies and HTTP framing.

Whatever a client sends, the server answers with no 5xx (but 501 for a Transfer-Encoding h11
does not support, and 503 with Retry-After if it says it is overloaded), every 4xx carries a
JSON ``{"error": ...}``, no handler raises in the event loop, and a good lookup still works
after each batch.  Examples are derandomized, so a run in CI is the run on a laptop.
"""
from __future__ import annotations

import base64
import json
import os
import socket
import string
from typing import Any, Dict, List, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from rc_cts.runner import start_in_thread

from .conftest import Crashes, service_opts
from .searchers import HitSearcher

USER, PASSWORD = "fuzz", "p\u00e4ss:word"
AUTH = b"Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode())
GOOD = {"type": "net.uri", "value": "http://ok"}
ANSWER_SECS = 5.0  # far above what any answer takes here; the server's own timeouts are 2-3 s
BODY_LIMIT_MB = 0.25
# RC_CTS_FUZZ_EXAMPLES=5000 for a longer run; still derandomized, so a failure found is replayed
EXAMPLES = int(os.environ.get("RC_CTS_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def server():
    svc = start_in_thread(service_opts(
        auth_user=USER, auth_password=PASSWORD, max_body_mb=BODY_LIMIT_MB, max_file_mb=BODY_LIMIT_MB,
        idle_timeout_secs=2, request_timeout_secs=3, sync_wait_secs=2), [HitSearcher()])
    svc.crashes = Crashes().register(svc.service.engine)  # the HTTP server's own Manager
    yield svc
    svc.stop()


# -- talking to it ---------------------------------------------------------------------------
Response = Tuple[int, Dict[bytes, bytes], bytes]


class Reader:
    """Answers read one after the other off a socket (bytes past one answer are the next's)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.data = b""

    def next(self) -> Optional[Response]:
        """The next answer, or None if the server closed without a whole one."""
        while True:
            end = self.data.find(b"\r\n\r\n")
            if end >= 0:
                lines = self.data[:end].split(b"\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(b":") for h in lines[1:])}
                stop = end + 4 + int(headers.get(b"content-length", b"0"))
                if len(self.data) >= stop:
                    body, self.data = self.data[end + 4:stop], self.data[stop:]
                    return int(lines[0].split()[1]), headers, body
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            self.data += chunk


def read_response(sock: socket.socket) -> Optional[Response]:
    return Reader(sock).next()


def exchange(svc, raw: bytes, half_close: bool) -> Optional[Response]:
    """Send ``raw`` on a new connection; ``half_close`` ends our side after it (the framing may
    promise more than was sent: the server must answer or close at once, not wait)."""
    sock = socket.create_connection((svc.service.http.host, svc.service.http.port), timeout=ANSWER_SECS)
    try:
        try:
            sock.sendall(raw)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # refused early and closed: what it answered is still to read
        try:
            return read_response(sock)
        except socket.timeout:
            raise AssertionError(f"no answer within {ANSWER_SECS}s to {raw[:300]!r}") from None
    finally:
        sock.close()


def check(svc, raw: bytes, half_close: bool = False) -> Optional[Response]:
    """Send ``raw`` and check the answer (if any) and the server's health."""
    answer = exchange(svc, raw, half_close)
    judge(svc, answer, raw, half_close)
    return answer


def settle(svc) -> None:
    """One OPTIONS round trip: the server's Manager handles events in order, so by its answer it
    has handled anything an earlier request raised (a crash after the answer was sent included)."""
    status, _, _ = exchange(svc, request(b"OPTIONS"), half_close=False) or (0, {}, b"")
    assert status == 200, status


def judge(svc, answer: Optional[Response], raw: bytes, half_close: bool = False) -> None:
    """No handler raised; the answer (if any) is no 5xx but the allowed ones, and a 4xx says why."""
    settle(svc)
    crashes = svc.crashes.take()
    assert not crashes, (crashes, raw[:500])
    if answer is None:
        return
    status, headers, body = answer
    overloaded = status == 503 and b"retry-after" in headers
    unsupported_te = status == 501 and b"transfer-encoding" in raw.lower()
    assert status < 500 or overloaded or unsupported_te, (status, body, raw[:500])
    assert half_close or status != 408, ("waited for more than was sent", body, raw[:500])
    if status >= 400:
        error = json.loads(body)
        assert set(error) == {"error"} and isinstance(error["error"], str), (status, body)


def assert_good_lookup(svc) -> None:
    r = svc.client(user=USER, password=PASSWORD).post("test", GOOD)
    assert r.status == 200 and r.json["hits"], r
    crashes = svc.crashes.take()
    assert not crashes, crashes


def request(method: bytes = b"POST", target: bytes = b"/cts/test", headers=(), body: bytes = b"",
            version: bytes = b"HTTP/1.1", length: bool = True) -> bytes:
    """A request's bytes; Host, Authorization and Content-Length added unless given."""
    names = {h[0].lower() for h in headers}
    head = [(b"Host", b"fuzz")] if b"host" not in names else []
    head += [(b"Authorization", AUTH)] if b"authorization" not in names else []
    head += list(headers)
    if length and not names & {b"content-length", b"transfer-encoding"}:
        head.append((b"Content-Length", str(len(body)).encode()))
    lines = [b" ".join([method, target, version])] + [k + b": " + v for k, v in head]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunked(body: bytes, sizes: List[int]) -> bytes:
    """``body`` in chunks of the given sizes (the rest in one), then the last chunk."""
    out, pos = b"", 0
    for size in sizes + [len(body)]:
        piece = body[pos:pos + max(size, 1)]
        if piece:
            out += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos += len(piece)
    return out + b"0\r\n\r\n"


# -- strategies ------------------------------------------------------------------------------
def mostly(good: st.SearchStrategy, *bad: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` three times in four (shrinking towards it): most examples stay close enough to a
    valid request to get past the first check, so the later ones are fuzzed too.  (``one_of``
    weighs its distinct strategies alike, and drops repeated ones.)"""
    either = st.one_of(*bad)
    return st.integers(0, 3).flatmap(lambda i: either if i == 3 else good)


TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
BCHARS = string.ascii_letters + string.digits + "'()+_,-./:=? "
token = st.text(TCHAR, min_size=1, max_size=16).map(str.encode)
odd_bytes = st.binary(max_size=40)
line_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
weird_text = mostly(st.text(max_size=20),
                    st.sampled_from(["\ud800", "a\udfff", "\udbff\udbff", "\x00", "\u2028", "\uffff"]))


def boundaries() -> st.SearchStrategy[bytes]:
    good = st.text(BCHARS, min_size=1, max_size=70).filter(lambda b: not b.endswith(" ")).map(str.encode)
    return mostly(good, st.just(b""), st.text(BCHARS, min_size=71, max_size=300).map(str.encode),
                  st.sampled_from([b"b" * 71, b"b" * 257, b"b" * 5000]), st.binary(min_size=1, max_size=80))


def content_types() -> st.SearchStrategy[bytes]:
    def multipart(b: bytes, quote: bool, extra: bytes) -> bytes:
        return b"multipart/form-data; " + extra + b"boundary=" + (b'"%s"' % b if quote else b)
    return st.one_of(
        st.sampled_from([b"application/json", b"APPLICATION/JSON; charset=utf-8", b"text/json",
                         b"application/vnd.x+json", b"multipart/form-data", b"multipart/form-data;",
                         b"multipart/form-data; boundary=", b'multipart/form-data; boundary=""',
                         b"multipart/mixed; boundary=x", b"text/plain", b"", b";", b"/", b"*/*",
                         b"application/json; charset=latin-1; charset=utf-16",
                         b'multipart/form-data; boundary="a\\"b"; boundary=c']),
        st.builds(multipart, boundaries(), st.booleans(), st.sampled_from([b"", b"charset=x; ", b"a=\"; "])),
        st.builds(lambda t, p: t + b"; " + p, token, line_bytes),
        line_bytes, odd_bytes)


def authorizations() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.sampled_from([b"", b"Basic", b"Basic ", b"basic " + AUTH[6:], b"Bearer x",
                         b"Basic !!!!", b"Basic " + AUTH[6:-2], b"Basic " + AUTH[6:] + b"===",
                         b"Basic \xff\xfe", b"Basic " + base64.b64encode(b"fuzz"),
                         b"Basic " + base64.b64encode("fuzz:p\u00e4ss:word".encode("latin-1"))]),
        st.builds(lambda raw: b"Basic " + base64.b64encode(raw), st.binary(max_size=40)),
        line_bytes)


header_names = st.one_of(
    st.sampled_from([b"Content-Type", b"Content-Length", b"Authorization", b"Transfer-Encoding", b"Host",
                     b"Connection", b"Expect", b"Upgrade", b"Content-Encoding", b"Trailer", b"TE",
                     b"content-length", b"CONTENT-TYPE", b"Content-Length ", b" Host", b"X-\xff"]),
    token, odd_bytes)
header_values = st.one_of(
    st.sampled_from([b"", b"0", b"-1", b"1e3", b"99999999999999999999", b"chunked", b"gzip", b"close",
                     b"keep-alive", b"100-continue", b"websocket", b"h2c", b"\xff\xfe", b" \t"]),
    content_types(), authorizations(), line_bytes, odd_bytes)
extra_headers = st.lists(st.tuples(mostly(token, header_names), header_values), max_size=2)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), weird_text)
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(weird_text, inner, max_size=4)), max_leaves=20)


def artifacts() -> st.SearchStrategy[Any]:
    """Mostly ThreatServiceArtifactDTO-shaped, with odd types, values and properties."""
    types = mostly(st.sampled_from(["net.uri", "net.uri", "net.ip", "email.header"]),
                   st.sampled_from(["", " ", "a/b", "x" * 129, "n\u00e9t.uri"]), weird_text, json_values())
    values = mostly(st.one_of(weird_text, st.integers(), st.dictionaries(weird_text, weird_text, max_size=3)),
                    json_values())
    prop = st.fixed_dictionaries({}, optional={"name": mostly(weird_text, json_values()),
                                               "value": mostly(weird_text, json_values())})
    shaped = st.fixed_dictionaries({"type": types, "value": values},
                                   optional={"properties": mostly(st.lists(prop, max_size=3), json_values())})
    return mostly(shaped, st.dictionaries(weird_text, json_values(), max_size=4), json_values())


def nested(depth: int, kind: int) -> bytes:
    """An artifact whose value (or properties) nests ``depth`` levels, built as bytes: the
    json module would recurse that deep itself."""
    inner = b"[" * depth + b"1" + b"]" * depth if kind == 0 else b'{"a":' * depth + b"1" + b"}" * depth
    key = b"value" if kind < 2 else b"properties"
    return b'{"type": "net.uri", "value": "x", "%s": %s}' % (key, inner)


def to_json(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes; lone surrogates go out as \\ud800 escapes, or (not ascii_only) as the bytes
    Python would give them, which are not UTF-8."""
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def mangle(raw: bytes, cut: Optional[int], insert: bytes) -> bytes:
    """``raw`` cut short at ``cut`` percent of its length, with ``insert`` put in at that point."""
    if cut is None:
        return raw
    at = len(raw) * cut // 100
    return raw[:at] + insert


@st.composite
def multipart_bodies(draw) -> Tuple[bytes, bytes]:
    """(Content-Type, body): parts with random names, headers and content, sometimes broken."""
    boundary = draw(boundaries())
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(mostly(st.sampled_from([b"artifact", b"artifact", b"file", b"other"]), line_bytes))
        disposition = draw(mostly(st.just(b'form-data; name="%s"'),
                                  st.sampled_from([b"form-data; name=%s", b"attachment", b"form-data",
                                                   b'form-data; name="%s"; filename="f\xff.bin"',
                                                   b"form-data; name*=UTF-8''%s"])))
        headers = [(b"Content-Disposition", disposition.replace(b"%s", name))] + draw(extra_headers)
        content = draw(mostly(st.builds(to_json, artifacts(), mostly(st.just(True), st.just(False))),
                              st.just(to_json(GOOD, True)), st.binary(max_size=300),
                              st.builds(nested, st.integers(1, 50000), st.integers(0, 2)),
                              st.just(b"--" + boundary), st.just(b"\r\n--" + boundary + b"--")))
        crlf = draw(mostly(st.just(b"\r\n"), st.sampled_from([b"\n", b""])))
        parts.append(b"--" + boundary + crlf + b"".join(k + b": " + v + crlf for k, v in headers)
                     + crlf + content + b"\r\n")
    body = (draw(st.sampled_from([b"", b"", b"preamble\r\n"])) + b"".join(parts)
            + draw(mostly(st.just(b"--" + boundary + b"--\r\n"),
                          st.sampled_from([b"--" + boundary + b"--", b"", b"--" + boundary + b"--\r\nepilogue"]))))
    body = mangle(body, draw(mostly(st.none(), st.integers(0, 99))), draw(st.sampled_from([b"", b"\r\n", b"--"])))
    return b'multipart/form-data; boundary="%s"' % boundary, body


# -- the fuzz tests --------------------------------------------------------------------------
def test_request_heads(server):
    """Methods, targets, versions and headers of any bytes: the head alone decides the answer,
    so the connection is half-closed after the request."""
    @FUZZ
    @given(method=mostly(st.sampled_from([b"POST", b"GET", b"OPTIONS"]),
                         st.sampled_from([b"HEAD", b"PUT", b"CONNECT", b"post", b"PRI"]), token, odd_bytes),
           target=mostly(st.sampled_from([b"/cts/test", b"/cts/test/", b"/cts/test/x", b"/cts/test?x=1"]),
                         st.sampled_from([b"/cts/test/%ff%00", b"/cts//test", b"/cts/test/" + b"x" * 200, b"*",
                                          b"http://h/cts/test", b"/cts/%2e%2e/test", b"/cts/nosuch"]),
                         st.builds(lambda s: b"/cts/test/" + s, line_bytes), odd_bytes),
           version=mostly(st.just(b"HTTP/1.1"), st.sampled_from([b"HTTP/1.0", b"HTTP/2", b"HTTP/1.1x", b""])),
           auth=mostly(st.just(AUTH), authorizations()),
           headers=st.lists(st.tuples(header_names, header_values), max_size=5),
           body=st.sampled_from([b"", to_json(GOOD, True), b"x" * 10]))
    def run(method, target, version, auth, headers, body):
        headers = [(b"Authorization", auth)] + headers
        check(server, request(method, target, headers, body, version), half_close=True)

    run()
    assert_good_lookup(server)


def test_json_bodies(server):
    """Any JSON value, artifact-like objects with random types, and broken JSON, in bodies whose
    framing is right (plain or chunked): the answer is read before the connection closes."""
    @FUZZ
    @given(value=mostly(artifacts(), st.builds(nested, st.integers(1, 100000), st.integers(0, 2))),
           ascii_only=mostly(st.just(True), st.just(False)),
           cut=mostly(st.none(), st.integers(0, 99)), insert=st.sampled_from([b"", b"\xff", b"[" * 200]),
           ctype=st.sampled_from([b"application/json", b"text/json", None, b"application/json; charset=utf-8"]),
           chunks=mostly(st.none(), st.lists(st.integers(1, 50), max_size=5)))
    def run(value, ascii_only, cut, insert, ctype, chunks):
        body = mangle(value if isinstance(value, bytes) else to_json(value, ascii_only), cut, insert)
        headers = [(b"Content-Type", ctype)] if ctype is not None else []
        if chunks is not None:
            headers.append((b"Transfer-Encoding", b"chunked"))
            body = chunked(body, chunks)
        answer = check(server, request(headers=headers, body=body))
        assert answer is not None, "no answer to a well-framed request"

    run()
    assert_good_lookup(server)


def test_multipart_bodies(server):
    """Random parts, part names, part headers, boundaries and truncation.  When the body is cut
    short below its Content-Length, the connection is half-closed after it."""
    @FUZZ
    @given(ctype_body=multipart_bodies(), claimed_extra=mostly(st.just(0), st.just(10)),
           ctype_override=mostly(st.none(), content_types()))
    def run(ctype_body, claimed_extra, ctype_override):
        ctype, body = ctype_body
        headers = [(b"Content-Type", ctype_override if ctype_override is not None else ctype),
                   (b"Content-Length", str(len(body) + claimed_extra).encode())]
        answer = check(server, request(headers=headers, body=body), half_close=claimed_extra > 0)
        assert answer is not None or claimed_extra > 0, "no answer to a well-framed request"

    run()
    assert_good_lookup(server)


def test_framing(server):
    """Duplicated and odd Content-Lengths, Transfer-Encodings h11 does and does not support,
    broken chunks, pipelined requests behind the first."""
    lengths = st.one_of(st.integers(0, 300).map(lambda n: str(n).encode()),
                        st.sampled_from([b"", b"-1", b"+5", b"5, 5", b"5,6", b"0x10", b" 7 ", b"\xd9\xa1"]))
    encodings = st.sampled_from([b"chunked", b"Chunked", b"gzip", b"gzip, chunked", b"chunked, gzip",
                                 b"chunked, chunked", b"identity", b"", b"\xffchunked"])
    chunk_junk = st.sampled_from([b"", b"zz\r\n", b"ffffffffffffffffffff\r\n", b"5;ext=1\r\nhello\r\n",
                                  b"3\r\nabcdef\r\n", b"0\r\nTrailer: x\r\n\r\n", b"\r\n\r\n", b"1\n\n"])

    @FUZZ
    @given(content_lengths=st.lists(lengths, max_size=3), te=st.lists(encodings, max_size=2),
           chunks=st.none() | st.lists(st.integers(1, 40), max_size=4), junk=chunk_junk,
           ctype=st.sampled_from([b"application/json", b"multipart/form-data; boundary=b"]),
           body=st.sampled_from([to_json(GOOD, True), b"--b\r\nContent-Disposition: form-data; name=artifact"
                                 b"\r\n\r\n" + to_json(GOOD, True) + b"\r\n--b--\r\n", b""]),
           pipelined=st.sampled_from([b"", b"GET /cts/test/1 HTTP/1.1\r\nHost: x\r\n\r\n", b"\x00\r\n\r\n",
                                      b"OPTIONS /cts/test HTTP/1.1\r\n"]))
    def run(content_lengths, te, chunks, junk, ctype, body, pipelined):
        headers = [(b"Content-Type", ctype)] + [(b"Content-Length", n) for n in content_lengths]
        headers += [(b"Transfer-Encoding", t) for t in te]
        payload = (chunked(body, chunks) if chunks is not None else body) + junk
        check(server, request(headers=headers, body=payload, length=False) + pipelined, half_close=True)

    run()
    assert_good_lookup(server)


def connection_kinds() -> Dict[str, bytes]:
    """Requests, good and bad, to send several of on one connection."""
    mp_type, mp_body = b"multipart/form-data; boundary=xyz", (
        b"--xyz\r\nContent-Disposition: form-data; name=\"artifact\"\r\n\r\n" + to_json(GOOD, True)
        + b"\r\n--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n--xyz--\r\n")
    return {
        "good": request(headers=[(b"Content-Type", b"application/json")], body=to_json(GOOD, True)),
        "multipart": request(headers=[(b"Content-Type", mp_type)], body=mp_body),
        "chunked": request(headers=[(b"Content-Type", b"application/json"), (b"Transfer-Encoding", b"chunked")],
                           body=chunked(to_json(GOOD, True), [5, 7])),
        "other artifact": request(body=to_json({"type": "net.ip", "value": "192.0.2.1"}, True)),
        "options": request(b"OPTIONS"),
        "get unknown": request(b"GET", b"/cts/test/0123"),
        "get by id": request(b"GET", b"/cts/test/" + uuid5_of(GOOD).encode()),
        "bad json": request(body=b'{"type": '),
        "surrogate": request(body=b'{"type": "net.uri", "value": "\\ud800"}'),
        "no service": request(target=b"/cts/nosuch", body=to_json(GOOD, True)),
        "bad method": request(b"DELETE"),
        "no auth": request(headers=[(b"Authorization", b"")], body=to_json(GOOD, True)),
        "no auth, no body": request(b"OPTIONS", headers=[(b"Authorization", b"Basic eA==")]),
        "too large": request(headers=[(b"Content-Length", str(2 * 1024 * 1024).encode())]) + b"x" * 1000,
        "bad boundary": request(headers=[(b"Content-Type", b"multipart/form-data; boundary=" + b"b" * 300)],
                                body=b"--" + b"b" * 300 + b"--\r\n"),
        "close": request(b"OPTIONS", headers=[(b"Connection", b"close")]),
        "http/1.0": request(b"OPTIONS", version=b"HTTP/1.0"),
        "garbage": b"\x16\x03\x01\x00\r\n\r\n",
    }


def one_connection(svc, kinds: Dict[str, bytes], names: List[str], pipelined: bool) -> None:
    """Send the requests ``names`` on one connection, all at once or each once the one before is
    answered; each must be answered in order until the server says it closes."""
    sock = socket.create_connection((svc.service.http.host, svc.service.http.port), timeout=ANSWER_SECS)
    reader = Reader(sock)
    try:
        if pipelined:
            sock.sendall(b"".join(kinds[n] for n in names))
        for i, name in enumerate(names):
            if not pipelined:
                try:
                    sock.sendall(kinds[name])
                except OSError:
                    break
            try:
                answer = reader.next()
            except socket.timeout:
                raise AssertionError(f"no answer within {ANSWER_SECS}s to {name} after {names[:i]}") from None
            judge(svc, answer, kinds[name])
            assert answer is not None, f"closed without answering {name} after {names[:i]}"
            assert answer[0] != 408, (name, names, answer)
            if answer[1].get(b"connection") == b"close":
                break
    finally:
        sock.close()


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-after-another", "pipelined"])
def test_requests_on_one_connection(server, pipelined):
    """Keep-alive: each request sent once the one before is answered; or pipelined: all sent
    at once, the answers read after."""
    kinds = connection_kinds()

    @FUZZ
    @given(names=st.lists(st.sampled_from(sorted(kinds)), min_size=1 + pipelined, max_size=5))
    def run(names):
        one_connection(server, kinds, names, pipelined=pipelined)

    run()
    assert_good_lookup(server)


def uuid5_of(artifact: Dict[str, Any]) -> str:
    """The id a POST of ``artifact`` to /cts/test gets, without a file."""
    from rc_cts.http.protocol import request_id
    return request_id("test", artifact)
