"""Artifact files: streamed uploads, limits, the file searchers get, and nothing left on disk."""
import hashlib
import os
import socket
import time

import pytest

from rc_cts.tools.client import multipart
from rc_cts.testing import hit_values

from .searchers import FileSearcher, HitSearcher

KB = 1024
MB = 1024 * KB





@pytest.fixture
def svc(start_service, upload_dir):
    searcher = FileSearcher()
    service = start_service([searcher, HitSearcher()], upload_dir=upload_dir, max_file_mb=1,
                            max_body_mb=0.05, lookup_timeout_secs=1)
    service.searcher = searcher
    return service


def wait_empty(path, timeout=5.0):
    deadline = time.time() + timeout
    while list(path.iterdir()) and time.time() < deadline:
        time.sleep(0.02)
    return list(path.iterdir())


def test_options_says_upload_file_where_a_searcher_wants_files(svc):
    c = svc.client()
    assert c.options("files").json == {"upload_file": True}
    assert c.options("test").json == {"upload_file": False}


def test_searcher_gets_the_file(svc, upload_dir):
    data = b"MZ\x90\x00" + os.urandom(500 * KB)
    r = svc.client().post("files", {"type": "file.content", "value": "sample.exe"}, file_bytes=data)
    assert r.status == 200
    p = hit_values(r.json["hits"][0])
    assert p["Name"] == "sample.bin" and p["Size"] == len(data) and p["On disk"] == len(data)
    assert p["SHA256"] == hashlib.sha256(data).hexdigest()
    assert p["Type"] == "application/octet-stream" and p["Head"].startswith("MZ")
    assert p["Artifact"] == "sample.exe"                  # event.artifact as before
    assert svc.searcher.paths[0].startswith(str(upload_dir))
    assert wait_empty(upload_dir) == []                   # removed once the searchers were done


def test_small_file_and_no_file(svc, upload_dir):
    r = svc.client().post("files", {"type": "file.content", "value": "tiny"}, file_bytes=b"")
    assert hit_values(r.json["hits"][0])["Size"] == 0
    r = svc.client().post("files", {"type": "file.content", "value": "tiny"})
    assert hit_values(r.json["hits"][0])["File"] == "none"
    assert wait_empty(upload_dir) == []


def test_request_id_covers_the_file_content(svc):
    c = svc.client()
    a = c.post("files", {"type": "file.content", "value": "x"}, file_bytes=b"one")
    b = c.post("files", {"type": "file.content", "value": "x"}, file_bytes=b"two")
    a2 = c.post("files", {"type": "file.content", "value": "x"}, file_bytes=b"one")
    assert a.json["id"] != b.json["id"] and a.json["id"] == a2.json["id"]
    assert len(svc.searcher.paths) == 2                   # the repeat came from the store


def test_file_limit(svc, upload_dir):
    c = svc.client()
    just_under = c.post("files", {"type": "file.content", "value": "under"}, file_bytes=b"u" * (MB - 1))
    assert just_under.status == 200 and hit_values(just_under.json["hits"][0])["Size"] == MB - 1
    over = c.post("files", {"type": "file.content", "value": "over"}, file_bytes=b"o" * (MB + 1))
    assert over.status == 413 and "larger than the limit" in over.json["error"]
    assert wait_empty(upload_dir) == []


def test_oversized_upload_is_refused_while_streaming(svc, upload_dir):
    """No Content-Length: the limit is found while the file streams in; nothing stays on disk."""
    body, headers = multipart({"type": "file.content", "value": "big"}, file_bytes=b"b" * (3 * MB))
    s = socket.create_connection((svc.service.http.host, svc.service.http.port), timeout=10)
    s.sendall(f"POST /cts/files HTTP/1.1\r\nHost: x\r\nContent-Type: {headers['Content-Type']}\r\n"
              "Transfer-Encoding: chunked\r\n\r\n".encode())
    answer = b""
    try:
        for i in range(0, len(body), 64 * KB):
            chunk = body[i:i + 64 * KB]
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass
    try:
        answer = s.recv(65536)
    except OSError:
        pass
    s.close()
    assert answer.startswith(b"HTTP/1.1 413") and b'"error"' in answer
    assert wait_empty(upload_dir) == []


def test_nothing_left_behind_after_a_mix_of_uploads(svc, upload_dir):
    c = svc.client()
    big = os.urandom(600 * KB)
    # a good one, a failing searcher, a lookup that times out, oversized, truncated,
    # two file parts, a missing artifact part, and a client that leaves mid-upload
    assert c.post("files", {"type": "file.content", "value": "good"}, file_bytes=big).status == 200
    assert c.post("files", {"type": "file.content", "value": "fail"}, file_bytes=big + b"1").json["hits"] == []
    assert c.post("files", {"type": "file.content", "value": "sleep:1.5"}, file_bytes=big + b"2").status in (200, 303)
    assert c.post("files", {"type": "file.content", "value": "over"}, file_bytes=b"o" * (2 * MB)).status == 413
    body, headers = multipart({"type": "file.content", "value": "cut"}, file_bytes=big)
    assert c.request("POST", "/files", body[:-100], headers).status == 400
    b, part = "BND", os.urandom(300 * KB)  # each part large enough to go to disk, both within the limits
    two = (f"--{b}\r\nContent-Disposition: form-data; name=\"artifact\"\r\n\r\n"
           '{"type": "file.content", "value": "two"}\r\n'
           f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n").encode() + part + \
          (f"\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n").encode() + part + \
          f"\r\n--{b}--\r\n".encode()
    r = c.request("POST", "/files", two, {"Content-Type": f"multipart/form-data; boundary={b}"})
    assert r.status == 400 and "more than one 'file' part" in r.json["error"]
    no_artifact = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n").encode() + \
        part + f"\r\n--{b}--\r\n".encode()
    r = c.request("POST", "/files", no_artifact, {"Content-Type": f"multipart/form-data; boundary={b}"})
    assert r.status == 400 and "no 'artifact' part" in r.json["error"]
    s = socket.create_connection((svc.service.http.host, svc.service.http.port))
    s.sendall(f"POST /cts/files HTTP/1.1\r\nHost: x\r\nContent-Type: {headers['Content-Type']}\r\n"
              f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:len(body) // 2])
    time.sleep(0.2)
    s.close()
    assert wait_empty(upload_dir, timeout=6) == []
    assert c.post("test", {"type": "net.uri", "value": "still serving"}).status == 200


def test_files_of_running_lookups_are_removed_when_the_service_stops(start_service, upload_dir):
    svc = start_service([FileSearcher()], upload_dir=upload_dir, sync_wait_secs=0.1)
    r = svc.client().post("files", {"type": "file.content", "value": "sleep:3"}, file_bytes=os.urandom(400 * KB))
    assert r.status == 303 and list(upload_dir.iterdir())
    svc.stop()
    assert list(upload_dir.iterdir()) == []


def test_bad_upload_dir_is_a_config_error(start_service, tmp_path):
    from rc_cts.config import ConfigError
    with pytest.raises(ConfigError, match="'upload_dir'"):
        start_service([FileSearcher()], upload_dir=tmp_path / "missing")
