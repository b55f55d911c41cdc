"""The artifact file a platform uploads with an artifact, as searchers receive it, and the
temporary files behind it: each has one owner at a time and is removed on every path (the
lookup's end, an error, the service's stop, the process's exit); a crash's leftovers are
swept at the next start."""
from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import tempfile
import threading
import unicodedata
import weakref
from typing import BinaryIO, Optional, Set

LOG = logging.getLogger(__name__)

SPOOL_THRESHOLD = 256 * 1024  # bytes kept in memory before the file goes to disk
MAX_NAME_BYTES = 255          # the longest file name most file systems allow
FALLBACK_NAME = "upload"
# rc-cts-<pid>-<random>.upload, or rc-cts-<random>.upload as named before the pid was in it
# (the random part is mkstemp's: lower-case letters, digits and "_")
TEMP_NAME = re.compile(r"rc-cts-(?:(\d+)-)?[a-z0-9_]+\.upload")

# Temporary files this process has open: the sweep keeps them even if their pid is its own.
_in_use: Set[str] = set()
_in_use_lock = threading.Lock()


def _remove(path: str) -> None:
    """Remove a temporary file; run once per file, by close(), garbage collection or exit."""
    with _in_use_lock:
        _in_use.discard(path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        LOG.warning("cannot remove the upload file %s: %s", path, exc)


class ArtifactFile:
    """An uploaded artifact file, as searchers get it in ``event.file``:

    * ``name``: a safe base name for the file (see ``safe_filename``: no directory part, no
      control characters, never "." or "..", at most 255 bytes, "upload" if nothing is
      left), fit to join to a directory or show in a hit;
    * ``original_name``: the file name exactly as the platform sent it: data, not a path;
    * ``content_type``: the part's type; ``size`` in bytes; ``sha256``: hex digest,
      computed while it streamed in;
    * ``path``: a file on disk with the content; ``open()``: a new binary reader;
      ``read()``: all the bytes (mind the size).

    Small files stay in memory until a searcher asks for ``path``; larger ones are written
    to a temporary file (``rc-cts-<pid>-<random>.upload``) as they arrive.  ``close()``
    removes it, once however often it is called; the framework calls it when every searcher
    is done with the lookup (or it timed out).  ``with ArtifactFile(...) as f:`` closes it
    at the end of the block.  A file dropped unclosed is removed when it is collected, or
    when the process exits.
    """

    def __init__(self, name: str = "", content_type: str = "application/octet-stream",
                 tmpdir: Optional[str] = None, max_bytes: Optional[int] = None):
        self.original_name = name
        self.name = safe_filename(name)
        self.content_type = content_type
        self.size = 0
        self._max_bytes = max_bytes
        self._tmpdir = tmpdir
        self._hash = hashlib.sha256()
        self._memory: Optional[io.BytesIO] = io.BytesIO()
        self._disk: Optional[BinaryIO] = None
        self._path: Optional[str] = None
        self._removal: Optional[weakref.finalize] = None  # removes the temporary file, once
        self._closed = False
        self._lock = threading.Lock()  # several searchers may ask for `path` at once
        self.sha256 = ""

    # -- writing, while the upload streams in --------------------------------------------
    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise FileTooLarge(self._max_bytes)
        self._hash.update(data)
        if self._memory is not None and self._memory.tell() + len(data) > SPOOL_THRESHOLD:
            with self._lock:
                self._to_disk()
        sink = self._memory if self._memory is not None else self._disk
        if sink is None:
            raise ValueError(f"{self!r} is closed")
        sink.write(data)

    def finish(self) -> "ArtifactFile":
        self.sha256 = self._hash.hexdigest()
        if self._disk is not None:
            self._disk.close()
        return self

    def _to_disk(self) -> None:
        if self._closed:
            raise ValueError(f"{self!r} was removed: its lookup is over")
        with _in_use_lock:  # a sweep in another thread never sees it unregistered
            fd, path = tempfile.mkstemp(prefix=f"rc-cts-{os.getpid()}-", suffix=".upload",
                                        dir=self._tmpdir)
            _in_use.add(path)
        self._path = path
        self._removal = weakref.finalize(self, _remove, path)
        self._disk = os.fdopen(fd, "wb")
        if self._memory is not None:
            self._disk.write(self._memory.getvalue())
        self._memory = None

    # -- reading, by searchers -------------------------------------------------------------
    @property
    def path(self) -> str:
        """A path to the content on disk (written on first use for small files)."""
        with self._lock:
            if self._path is None:
                self._to_disk()
                assert self._disk is not None
                self._disk.close()
            assert self._path is not None
            return self._path

    def open(self) -> BinaryIO:
        """A new binary reader over the content."""
        with self._lock:
            if self._memory is not None:
                return io.BytesIO(self._memory.getvalue())
            if self._path is None:
                raise ValueError(f"{self!r} was removed: its lookup is over")
            return open(self._path, "rb")

    def read(self) -> bytes:
        with self.open() as fh:
            return fh.read()

    def close(self) -> None:
        """Remove the temporary file, if any; safe to call more than once."""
        with self._lock:
            self._closed = True
            if self._disk is not None and not self._disk.closed:
                self._disk.close()
            if self._removal is not None:
                self._removal()  # a no-op after the first time
            self._path = None
            self._memory = None

    def __enter__(self) -> "ArtifactFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ArtifactFile {self.name!r} {self.size} bytes sha256={self.sha256[:12]}>"


def release(file: Optional[ArtifactFile]) -> None:
    """Close the file, if there is one."""
    if file is not None:
        file.close()


def safe_filename(name: str) -> str:
    """The base name of an uploaded file's name, safe to join to a directory or to show: the
    part after the last / or \\, without control, format (bidi) or surrogate characters and
    surrounding blanks, at most 255 bytes of UTF-8 (a short extension kept), never "." or
    ".."; "upload" if nothing is left."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(c for c in base if unicodedata.category(c) not in ("Cc", "Cf", "Cs")).strip()
    if len(base.encode("utf-8")) > MAX_NAME_BYTES:
        stem, ext = os.path.splitext(base)
        if len(ext.encode("utf-8")) > 32:
            stem, ext = base, ""
        room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
        base = stem.encode("utf-8")[:room].decode("utf-8", "ignore") + ext
    return base if base not in ("", ".", "..") else FALLBACK_NAME


class Uploads:
    """A service's uploaded files: where they are written, and which are still open, so that
    the service's stop removes those nobody else will (a body half read, a request waiting
    on the store, a lookup in flight), and its start removes those a killed process left."""

    def __init__(self, directory: Optional[str] = None):
        self.directory = directory
        self._open: "weakref.WeakSet[ArtifactFile]" = weakref.WeakSet()
        self._lock = threading.Lock()

    def new(self, name: str, content_type: str, max_bytes: Optional[int]) -> ArtifactFile:
        file = ArtifactFile(name, content_type, self.directory, max_bytes)
        with self._lock:
            self._open.add(file)
        return file

    def close_all(self) -> None:
        with self._lock:
            files = list(self._open)
        for file in files:
            file.close()

    def sweep(self) -> int:
        """Remove stale upload files from ``directory`` (the system's temporary directory
        when unset); returns how many."""
        return sweep_stale(self.directory or tempfile.gettempdir())


def sweep_stale(directory: str) -> int:
    """Remove the upload files in ``directory`` whose process no longer runs (it was killed,
    or crashed), and those named before the pid was in the name; files that do not match
    ``TEMP_NAME`` are never touched.  Returns how many were removed."""
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        LOG.warning("cannot look for stale upload files in %s: %s", directory, exc)
        return 0
    removed = 0
    for entry in entries:
        match = TEMP_NAME.fullmatch(entry.name)
        try:
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
        except OSError:
            continue
        with _in_use_lock:
            if entry.path in _in_use or _running(match.group(1)):
                continue
            try:
                os.unlink(entry.path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                LOG.warning("cannot remove the stale upload file %s: %s", entry.path, exc)
                continue
        removed += 1
    if removed:
        LOG.info("removed %d stale upload files from %s", removed, directory)
    return removed


def _running(pid_text: Optional[str]) -> bool:
    """Whether the process that named a file may still use it.  This process's own pid counts
    as stopped (its files in use are in ``_in_use``): a restarted container often gets the pid
    its previous process had."""
    if pid_text is None:
        return False  # named before the pid was in the name
    if os.name == "nt":
        return True   # os.kill(pid, 0) would terminate the process there
    pid = int(pid_text)
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OverflowError:
        return False  # no process has such a pid
    except OSError:
        return True   # PermissionError: another user's process runs with it
    return True


class FileTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"file is larger than {limit} bytes")
        self.limit = limit
