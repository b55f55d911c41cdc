"""Uploaded files have one owner that removes their temporary file on every path: errors,
the service's stop, SIGTERM, and a SIGKILL (the next start sweeps what it left); a lookup
resumed without its file does not call the searchers that needed it; searchers get a safe
file name."""
import json
import logging
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

import pytest
import requests
from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, searcher_channel
from rc_cts.testing import hit_values
from rc_cts.tools.client import Client, multipart

from .searchers import FileSearcher, HitSearcher, SampleAnalysisSearcher, SampleNameSearcher

KB = 1024
MB = 1024 * KB
BIG = 600 * KB  # over the 256 KiB kept in memory: written to upload_dir




@pytest.fixture
def svc(start_service, upload_dir):
    return start_service([FileSearcher(), HitSearcher()], upload_dir=upload_dir, max_file_mb=1,
                         lookup_timeout_secs=2)


def files_in(path):
    return sorted(p.name for p in path.iterdir())


def wait_empty(path, timeout=5.0):
    deadline = time.time() + timeout
    while list(path.iterdir()) and time.time() < deadline:
        time.sleep(0.02)
    return files_in(path)


def wait_for_file(path, pattern=r"rc-cts-\d+-\w+\.upload", timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [n for n in files_in(path) if re.fullmatch(pattern, n)]
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"no upload file in {path}: {files_in(path)}")


def raw_multipart(filename_bytes, data=b"content", artifact=b'{"type": "file.content", "value": "x"}'):
    b = "BND"
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"artifact\"\r\n\r\n").encode() + artifact + \
        f"\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"".encode() + filename_bytes + \
        b"\r\nContent-Type: application/octet-stream\r\n\r\n" + data + f"\r\n--{b}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={b}"}


def start_upload(url, service, total=50 * MB, sent=4 * MB, value="up:0"):
    """A POST of a ``total``-byte file of which ``sent`` bytes are sent: an upload in progress."""
    body, headers = multipart({"type": "file.content", "value": value}, file_bytes=b"")
    head, tail = body.split(b"\r\n\r\n\r\n", 1)  # the file part's empty content
    head += b"\r\n\r\n"
    tail = b"\r\n" + tail
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(f"POST /cts/{service} HTTP/1.1\r\nHost: x\r\nContent-Type: {headers['Content-Type']}\r\n"
              f"Content-Length: {len(head) + total + len(tail)}\r\n\r\n".encode() + head)
    chunk = os.urandom(256 * KB)
    for _ in range(sent // len(chunk)):
        s.sendall(chunk)
        time.sleep(0.01)  # streamed, not all at once
    return s


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def config(tmp_path, upload_dir, *lines):
    return "\n".join(["[webserver]", "server = 127.0.0.1", "port = 0", "", "[custom_threat_service]",
                      f"upload_dir = {upload_dir}", *lines, "",
                      "[samples_searcher]", f"log = {tmp_path / 'samples.log'}", ""])


def sample_calls(tmp_path):
    path = tmp_path / "samples.log"
    return [line.split()[1:] for line in path.read_text().splitlines()] if path.exists() else []


# -- every error path leaves upload_dir empty ------------------------------------------------
def test_a_searcher_that_raises_leaves_no_file(svc, upload_dir):
    r = svc.client().post("files", {"type": "file.content", "value": "fail"}, file_bytes=os.urandom(BIG))
    assert r.status in (200, 303) and r.json["hits"] == []
    assert wait_empty(upload_dir) == []


def test_a_file_over_the_limit_leaves_no_file(svc, upload_dir):
    r = svc.client().post("files", {"type": "file.content", "value": "over"}, file_bytes=b"o" * (MB + 1))
    assert r.status == 413
    assert wait_empty(upload_dir) == []


def test_a_malformed_body_after_the_file_part_started_leaves_no_file(svc, upload_dir):
    body, headers = raw_multipart(b'; filename="a"', os.urandom(BIG))
    body = body[:-len(b"--BND--\r\n")] + b"--BND\r\nno colon here\r\n\r\nx\r\n--BND--\r\n"
    r = svc.client().request("POST", "/files", body, headers)
    assert r.status == 400 and "malformed multipart" in r.json["error"]
    assert wait_empty(upload_dir) == []


def test_an_error_in_the_app_after_the_body_is_parsed_leaves_no_file(svc, upload_dir, monkeypatch):
    def broken(*args):
        raise RuntimeError("bug")
    monkeypatch.setattr("rc_cts.http.app.request_id", broken)
    r = svc.client().post("files", {"type": "file.content", "value": "x"}, file_bytes=os.urandom(BIG))
    assert r.status == 500
    assert wait_empty(upload_dir) == []


def test_an_artifact_the_request_id_cannot_encode_leaves_no_file(svc, upload_dir):
    """A lone surrogate in the value (valid JSON) once made request_id raise after the parse."""
    body, headers = multipart(None, file_bytes=os.urandom(BIG),
                              raw_artifact=b'{"type": "file.content", "value": "\\ud800"}')
    svc.client().request("POST", "/files", body, headers)
    assert wait_empty(upload_dir) == []


def test_an_error_in_dispatcher_start_leaves_no_file_and_no_stuck_lookup(svc, upload_dir, monkeypatch):
    results = svc.service.dispatcher.results
    monkeypatch.setattr(results, "claim", lambda *a: (_ for _ in ()).throw(RuntimeError("bug")))
    artifact, data = {"type": "file.content", "value": "x"}, os.urandom(BIG)
    assert svc.client().post("files", artifact, file_bytes=data).status == 500
    assert wait_empty(upload_dir) == [] and svc.service.dispatcher.active == {}
    monkeypatch.undo()
    r = svc.client().post("files", artifact, file_bytes=data)  # the same id: not joined to a dead lookup
    assert r.status == 200 and hit_values(r.json["hits"][0])["Size"] == BIG


def test_an_error_after_an_asynchronous_store_read_answers_500_and_leaves_no_file(
        start_service, upload_dir, tmp_path, monkeypatch):
    """With a store read in the store's thread the error comes in a callback: nobody above it
    answers the request, so the callback does."""
    svc = start_service([FileSearcher()], upload_dir=upload_dir, store="sqlite",
                        sqlite_path=tmp_path / "s.sqlite3")
    monkeypatch.setattr(svc.service.dispatcher.results, "claim", lambda *a: 1 / 0)
    r = Client(svc.url, timeout=5).post("files", {"type": "file.content", "value": "x"},
                                        file_bytes=os.urandom(BIG))
    assert r.status == 500
    assert wait_empty(upload_dir) == []


def test_an_upload_dir_that_cannot_be_written_answers_503_and_leaves_no_file(start_service, upload_dir):
    svc = start_service([FileSearcher()], upload_dir=upload_dir)
    os.rmdir(upload_dir)
    r = svc.client().post("files", {"type": "file.content", "value": "x"}, file_bytes=os.urandom(BIG))
    assert r.status == 503 and "retry later" in r.json["error"]
    upload_dir.mkdir()
    r = svc.client().post("files", {"type": "file.content", "value": "x"}, file_bytes=os.urandom(BIG))
    assert r.status == 200 and wait_empty(upload_dir) == []


def test_an_artifact_file_closes_once_and_is_a_context_manager(upload_dir):
    from rc_cts.http.files import ArtifactFile
    with ArtifactFile("a.bin", tmpdir=str(upload_dir)) as f:
        f.write(b"x" * 10)
        f.finish()
        assert os.path.exists(f.path) and f.read() == b"x" * 10
    assert files_in(upload_dir) == []
    with pytest.raises(ValueError):
        f.path  # a searcher still running after its lookup ended: no new file on disk
    with pytest.raises(ValueError):
        f.open()
    f.close()
    assert files_in(upload_dir) == []
    g = ArtifactFile("b.bin", tmpdir=str(upload_dir))
    g.write(os.urandom(BIG))
    assert len(files_in(upload_dir)) == 1
    del g  # dropped without close: removed all the same
    assert files_in(upload_dir) == []


def test_the_service_stop_removes_the_file_of_an_upload_in_progress(start_service, upload_dir):
    svc = start_service([FileSearcher()], upload_dir=upload_dir)
    s = start_upload(svc.url[:-len("/cts")], "files", total=5 * MB, sent=1 * MB)
    [name] = wait_for_file(upload_dir)
    assert re.fullmatch(rf"rc-cts-{os.getpid()}-\w+\.upload", name)  # named for the owning process
    svc.stop()
    s.close()
    assert files_in(upload_dir) == []


# -- the sweep at start ----------------------------------------------------------------------
def test_stale_files_are_swept_at_start(start_service, upload_dir, caplog):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = start_service([FileSearcher()], upload_dir=upload_dir, sync_wait_secs=0.1)
        r = busy.client().post("files", {"type": "file.content", "value": "sleep:2"}, file_bytes=os.urandom(BIG))
        assert r.status == 303
        [in_use] = files_in(upload_dir)  # a lookup of a service in this process runs with it
        stale = [f"rc-cts-{dead_pid()}-abc_12.upload", "rc-cts-k2j4_x9q.upload",  # a dead pid; no pid (old)
                 f"rc-cts-{os.getpid()}-prev.upload"]  # this pid, not in use: a restarted container's
        kept = [f"rc-cts-{other.pid}-live1.upload", "rc-cts-notes.txt", "other.upload", "rc-cts-1-x.txt",
                "rc-cts-12-UPPER.upload"]
        for name in stale + kept:
            (upload_dir / name).write_bytes(b"x")
        (upload_dir / "rc-cts-99999999-dir.upload").mkdir()  # not a file: kept
        with caplog.at_level(logging.INFO, logger="rc_cts"):
            start_service([FileSearcher()], upload_dir=upload_dir)  # in this process too: in_use is kept
        assert files_in(upload_dir) == sorted(kept + ["rc-cts-99999999-dir.upload", in_use])
        assert "removed 3 stale upload files" in caplog.text
    finally:
        other.kill()
        other.wait()


def test_the_sweep_uses_the_system_temp_dir_without_upload_dir(start_service, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (tmp_path / f"rc-cts-{dead_pid()}-old.upload").write_bytes(b"x")
    svc = start_service([FileSearcher()])
    assert not list(tmp_path.glob("rc-cts-*.upload"))
    s = start_upload(svc.url[:-len("/cts")], "files", total=5 * MB, sent=1 * MB)
    wait_for_file(tmp_path)
    svc.stop()
    s.close()
    assert not list(tmp_path.glob("rc-cts-*.upload"))


def test_sigkill_during_an_upload_then_a_restart_leaves_no_file(run_cli, tmp_path, upload_dir):
    live = upload_dir / f"rc-cts-{os.getpid()}-keep.upload"  # of a process still running: this one
    live.write_bytes(b"in use")
    cfg = config(tmp_path, upload_dir)
    a = run_cli(cfg, module="tests.serve")
    s = start_upload(a.url, "samples")
    [name] = wait_for_file(upload_dir, rf"rc-cts-{a.proc.pid}-\w+\.upload")
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    s.close()
    assert name in files_in(upload_dir)  # what a crash leaves behind...
    b = run_cli(cfg, module="tests.serve")
    assert files_in(upload_dir) == [live.name]  # ...the next start removes; the live one is kept
    assert "removed 1 stale upload files" in b.log


def test_sigterm_during_an_upload_leaves_no_file(run_cli, tmp_path, upload_dir):
    a = run_cli(config(tmp_path, upload_dir), module="tests.serve")
    s = start_upload(a.url, "samples")
    wait_for_file(upload_dir)
    a.proc.send_signal(signal.SIGTERM)
    assert a.proc.wait(20) == 0
    s.close()
    assert files_in(upload_dir) == []


# -- a lookup without the file it needed -----------------------------------------------------
def test_a_resumed_lookup_does_not_run_the_searchers_that_needed_its_file(run_cli, tmp_path, upload_dir):
    db = tmp_path / "cts.sqlite3"
    cfg = config(tmp_path, upload_dir, "store = sqlite", f"sqlite_path = {db}", "lease_secs = 1",
                 "sync_wait_secs = 0.2", "later_retry_secs = 1", "incomplete_retry_secs = 0.1",
                 "max_retries = 3")
    a = run_cli(cfg, module="tests.serve")
    r = Client(a.url + "/cts").post("samples", {"type": "file.content", "value": "s1:60"},
                                    file_bytes=os.urandom(BIG))
    assert r.status == 303
    rid = r.json["id"]
    a.proc.send_signal(signal.SIGKILL)  # mid-lookup: the file is gone with the process
    a.proc.wait(10)
    b = run_cli(cfg, module="tests.serve")
    c = Client(b.url + "/cts")
    answers = []
    deadline = time.time() + 20
    while time.time() < deadline:
        got = c.get("samples", rid)
        answers.append(got)
        if got.status == 200:
            break
        time.sleep(0.2)
    assert [a.status for a in answers[:-1]] == [303] * (len(answers) - 1) and answers[-1].status == 200
    assert [hit_values(h) for h in answers[-1].json["hits"]] == [{"Sample": "s1"}]
    assert sample_calls(tmp_path) == [["s1", "file"]]  # called with the file, never without
    with sqlite3.connect(db) as conn:
        record = json.loads(conn.execute("SELECT record FROM lookups WHERE id = ?", (rid,)).fetchone()[0])
    assert record["complete"] and list(record["missing"]) == ["SampleAnalysisSearcher.analyse"]
    assert "resumed lookup" in b.log
    warnings = [line for line in b.log.splitlines() if " WARNING " in line and "file" in line]
    assert warnings and all("SampleAnalysisSearcher.analyse" in w for w in warnings)
    assert "s1:60" not in b.log  # no artifact values above DEBUG


def test_a_poll_driven_rerun_does_not_run_file_searchers_without_the_file(start_service, upload_dir, caplog):
    analysis = SampleAnalysisSearcher()
    svc = start_service([analysis, SampleNameSearcher()], upload_dir=upload_dir, lookup_timeout_secs=0.5,
                        sync_wait_secs=2, incomplete_retry_secs=0.05)
    c = svc.client()
    r = c.post("samples", {"type": "file.content", "value": "s2:1"}, file_bytes=os.urandom(BIG))
    assert r.status == 303 and [hit_values(h) for h in r.json["hits"]] == [{"Sample": "s2"}]  # timed out
    time.sleep(0.2)
    with caplog.at_level(logging.WARNING, logger="rc_cts"):
        again = c.get("samples", r.json["id"])
    assert again.status == 303 and [hit_values(h) for h in again.json["hits"]] == [{"Sample": "s2"}]
    assert analysis.calls == [("s2", "file")]
    assert "file" in caplog.text and "SampleAnalysisSearcher.analyse" in caplog.text
    assert "s2:1" not in caplog.text
    time.sleep(1)  # the timed-out call ends
    assert wait_empty(upload_dir) == []


# -- a safe file name ------------------------------------------------------------------------
class NameSearcher(BaseComponent):
    channel = searcher_channel("names")
    upload_file = True

    def __init__(self):
        super().__init__()
        self.seen = []

    @handler("file.content")
    def name(self, event, *args, **kwargs):
        self.seen.append((event.file.name, event.file.original_name))
        return Hit(StringProp(name="Name", value=event.file.name))


@pytest.mark.parametrize("sent, safe, original", [
    (b'; filename="../../etc/passwd"', "passwd", "../../etc/passwd"),
    (b'; filename="C:\\x\\evil.exe"', "evil.exe", "C:\\x\\evil.exe"),        # as browsers send it
    (b'; filename="C:\\\\x\\\\evil.exe"', "evil.exe", "C:\\x\\evil.exe"),    # quoted-string escapes
    (b'; filename="a\x00b"', "ab", "a\x00b"),
    (b'; filename="dir/\x1b[31mred\x7f\t"', "[31mred", "dir/\x1b[31mred\x7f\t"),
    (b'; filename=""', "upload", ""),
    (b"", "upload", ""),
    (b'; filename=".."', "upload", ".."),
    (b'; filename="x/."', "upload", "x/."),
    (b'; filename="caf\xc3\xa9.txt"', "caf\u00e9.txt", "caf\u00e9.txt"),
    (b'; filename="a;b.txt"', "a;b.txt", "a;b.txt"),
])
def test_searchers_get_a_safe_basename_and_the_original(start_service, upload_dir, sent, safe, original):
    searcher = NameSearcher()
    svc = start_service([searcher], upload_dir=upload_dir)
    body, headers = raw_multipart(sent)
    r = requests.post(svc.url + "/names", data=body, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert searcher.seen == [(safe, original)]


def test_safe_filename_limits_the_length_and_keeps_the_extension():
    from rc_cts.http.files import safe_filename
    long = safe_filename("x" * 300 + ".exe")
    assert len(long.encode()) == 255 and long.endswith("x.exe")
    wide = safe_filename("\u00e9" * 200)  # two bytes each: cut on a character boundary
    assert wide == "\u00e9" * 127
    assert safe_filename("a" * 10 + "." + "b" * 300) == ("a" * 10 + "." + "b" * 300)[:255]
    assert safe_filename("  \t ") == "upload" and safe_filename("a\\b/c") == "c"
