"""Uploading a large artifact file through the service: throughput, and how much the
service's memory grows (it streams the file to disk, so it should hardly grow at all).

    python benchmarks/bench_upload.py [--mb 200]
"""
import argparse
import hashlib
import http.client
import json
import os
import time
from pathlib import Path

from bench_lookups import start_service

CHUNK = 1024 * 1024


def proc_status(pid: int, field: str) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def upload(url: str, megabytes: int):
    """POST a multipart body of ``megabytes`` of file content, generated as it is sent."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    boundary = "benchboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"artifact\"\r\n"
            "Content-Type: application/json\r\n\r\n"
            + json.dumps({"type": "file.content", "value": "big.bin"}) +
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = os.urandom(CHUNK)
    digest = hashlib.sha256()
    for _ in range(megabytes):
        digest.update(block)

    def body():
        yield head
        for _ in range(megabytes):
            yield block
        yield tail

    conn = http.client.HTTPConnection(host, int(port), timeout=600)
    length = len(head) + megabytes * CHUNK + len(tail)
    t0 = time.perf_counter()
    conn.request("POST", "/cts/upload", body=body(), headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)})
    response = conn.getresponse()
    answer = json.loads(response.read())
    return response.status, answer, time.perf_counter() - t0, digest.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=200)
    args = ap.parse_args()
    proc, url = start_service(4, 0.0, "INFO", [f"max_file_mb={args.mb + 1}", "sync_wait_secs=30"])
    try:
        upload(url, 1)  # warm up
        before = proc_status(proc.pid, "VmRSS")
        status, answer, elapsed, digest = upload(url, args.mb)
        peak = proc_status(proc.pid, "VmHWM")
        props = {p["name"]: p["value"] for p in answer["hits"][0]["props"]} if status == 200 else {}
        assert status == 200 and props["SHA256"] == digest, (status, answer)
        print(f"upload: {args.mb} MB in {elapsed:.2f} s = {args.mb / elapsed:.0f} MB/s (sha256 verified)")
        print(f"memory: {before:.1f} MB resident before, peak {peak:.1f} MB: +{peak - before:.1f} MB")
    finally:
        proc.terminate()
        proc.wait()


if __name__ == "__main__":
    main()
