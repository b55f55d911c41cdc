"""The artifact file a platform uploads with an artifact, as searchers receive it."""
from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
from typing import BinaryIO, Optional

SPOOL_THRESHOLD = 256 * 1024  # bytes kept in memory before the file goes to disk


class ArtifactFile:
    """An uploaded artifact file, as searchers get it in ``event.file``:

    * ``name``: the file name the platform gave; ``content_type``: the part's type;
    * ``size`` in bytes; ``sha256``: hex digest, computed while it streamed in;
    * ``path``: a file on disk with the content; ``open()``: a new binary reader;
      ``read()``: all the bytes (mind the size).

    Small files stay in memory until a searcher asks for ``path``; larger ones are
    written to a temporary file as they arrive.  ``close()`` removes it: the framework
    calls it once every searcher is done with the lookup (or it timed out).
    """

    def __init__(self, name: str = "", content_type: str = "application/octet-stream",
                 tmpdir: Optional[str] = None, max_bytes: Optional[int] = None):
        self.name = name
        self.content_type = content_type
        self.size = 0
        self._max_bytes = max_bytes
        self._tmpdir = tmpdir
        self._hash = hashlib.sha256()
        self._memory: Optional[io.BytesIO] = io.BytesIO()
        self._disk: Optional[BinaryIO] = None
        self._path: Optional[str] = None
        self._lock = threading.Lock()  # several searchers may ask for `path` at once
        self.sha256 = ""

    # -- writing, while the upload streams in --------------------------------------------
    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._max_bytes is not None and self.size > self._max_bytes:
            raise FileTooLarge(self._max_bytes)
        self._hash.update(data)
        if self._memory is not None and self._memory.tell() + len(data) > SPOOL_THRESHOLD:
            self._to_disk()
        sink = self._memory if self._memory is not None else self._disk
        assert sink is not None
        sink.write(data)

    def finish(self) -> "ArtifactFile":
        self.sha256 = self._hash.hexdigest()
        if self._disk is not None:
            self._disk.close()
        return self

    def _to_disk(self) -> None:
        fd, self._path = tempfile.mkstemp(prefix="rc-cts-", suffix=".upload", dir=self._tmpdir)
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
            if self._disk is not None and not self._disk.closed:
                self._disk.close()
            if self._path is not None:
                try:
                    os.unlink(self._path)
                except FileNotFoundError:
                    pass
                self._path = None
            self._memory = None

    def __repr__(self) -> str:
        return f"<ArtifactFile {self.name!r} {self.size} bytes sha256={self.sha256[:12]}>"


class FileTooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"file is larger than {limit} bytes")
        self.limit = limit
