"""Request bodies parsed as they stream in: JSON, or multipart with an artifact and a file part.

The HTTP layer feeds each chunk as it arrives and enforces the body size
limit, so nothing here ever holds more than one part in memory.  A multipart body owns the
file it writes until ``finish`` hands it over: it closes it itself on every error.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Tuple, Union

from python_multipart.exceptions import FormParserError, MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from .errors import HttpError
from .files import SPOOL_THRESHOLD, ArtifactFile, FileTooLarge, Uploads
from .protocol import parse_artifact

LOG = logging.getLogger(__name__)
ParsedBody = Tuple[Dict[str, Any], Optional[ArtifactFile]]
MAX_OTHER_BYTES = 4 * 1024 * 1024  # default limit of everything in a multipart body but the file
# One Content-Disposition parameter: a quoted string (with backslash escapes) or a token.
_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.S)
# RFC 2046 section 5.1.1: 1 to 70 bchars, the last not a space.  python-multipart takes up to
# 256 and raises a plain exception above that; a boundary outside the RFC is refused up front.
BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


class JsonBody:
    """``application/json``: the body is the ThreatServiceArtifactDTO."""

    def __init__(self) -> None:
        self._chunks: List[bytes] = []
        self.held = 0  # bytes kept in memory, for the server's cap on all requests together

    def feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self.held += len(chunk)

    def finish(self) -> ParsedBody:
        raw = b"".join(self._chunks)
        if not raw.strip():
            raise HttpError(400, "request body is empty")
        return parse_artifact(raw), None

    def discard(self) -> None:
        self._chunks = []
        self.held = 0


class MultipartBody:
    """``multipart/form-data``: part ``artifact`` (JSON) and an optional part ``file``.
    The file part is limited by ``max_file_bytes``; everything else by ``max_other_bytes``."""

    def __init__(self, boundary: bytes, uploads: Optional[Uploads] = None,
                 max_file_bytes: Optional[int] = None, max_other_bytes: int = MAX_OTHER_BYTES):
        self._uploads = uploads if uploads is not None else Uploads()
        self._max_file_bytes = max_file_bytes
        self._max_other_bytes = max_other_bytes
        self._other_bytes = 0
        self._artifact: Optional[bytearray] = None
        self._file: Optional[ArtifactFile] = None
        self._current: Union[bytearray, ArtifactFile, None] = None  # what the part is written into
        self._header_name = b""
        self._header_value = b""
        self._headers: Dict[bytes, bytes] = {}
        self._ended = False
        self._discarded = False
        try:
            self._parser = MultipartParser(boundary, callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_val,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_end": self._end,
            })
        except FormParserError as exc:  # a boundary body_for did not check: still a 400
            raise HttpError(400, f"multipart boundary is not usable: {exc}") from None

    def feed(self, chunk: bytes) -> None:
        """Parse the next chunk; on any error the file is closed before the error is raised."""
        if self._discarded:
            return
        try:
            self._parser.write(chunk)
            return
        except MultipartParseError as exc:
            error = HttpError(400, f"malformed multipart body: {exc}")
        except FileTooLarge as exc:
            error = HttpError(413, f"artifact file is larger than the limit ({exc.limit} bytes)")
        except _PartsTooLarge:
            error = HttpError(413, f"request body is larger than the limit ({self._max_other_bytes} bytes, "
                                   "not counting the file)")
        except OSError as exc:  # upload_dir is full, or gone
            LOG.error("cannot write an uploaded file: %s", exc)
            error = HttpError(503, "the uploaded file cannot be stored now; retry later")
        except BaseException:
            self.discard()
            raise
        self.discard()
        raise error

    @property
    def held(self) -> int:
        """Bytes kept in memory: the artifact part, and a file part until it goes to disk."""
        size = self._file.size if self._file is not None else 0
        return (len(self._artifact) if self._artifact is not None else 0) + (size if size <= SPOOL_THRESHOLD else 0)

    def finish(self) -> ParsedBody:
        """The artifact and the file, which the caller owns from now on (and must close);
        on an error the file is closed here."""
        try:
            if not self._ended:
                raise HttpError(400, "multipart body is incomplete (no closing boundary)")
            if self._artifact is None:
                raise HttpError(400, "multipart body has no 'artifact' part")
            artifact = parse_artifact(bytes(self._artifact))
            if self._file is not None:
                self._file.finish()
        except BaseException:
            self.discard()
            raise
        file, self._file = self._file, None
        return artifact, file

    def discard(self) -> None:
        """Close the file (unless ``finish`` handed it over) and ignore what still comes."""
        self._discarded = True
        if self._file is not None:
            self._file.close()

    # -- parser callbacks ----------------------------------------------------------------
    def _part_begin(self) -> None:
        self._headers = {}
        self._current = None

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_val(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_name.strip().lower()] = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if name == "artifact":
            if self._artifact is not None:
                raise MultipartParseError("more than one 'artifact' part")
            self._artifact = bytearray()
            self._current = self._artifact
        elif name == "file":
            if self._file is not None:
                raise MultipartParseError("more than one 'file' part")
            ctype = self._headers.get(b"content-type", b"application/octet-stream")
            self._file = self._uploads.new(_filename(self._headers.get(b"content-disposition", b"")),
                                           ctype.decode("latin-1"), self._max_file_bytes)
            self._current = self._file
        # other parts are read and ignored

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current is self._file and self._file is not None:
            self._file.write(data[start:end])
            return
        self._other_bytes += end - start
        if self._other_bytes > self._max_other_bytes:
            raise _PartsTooLarge()
        if self._current is self._artifact and self._artifact is not None:
            self._artifact += data[start:end]
        # parts other than artifact and file are counted, and dropped

    def _end(self) -> None:
        self._ended = True


class _PartsTooLarge(Exception):
    pass


def _filename(disposition: bytes) -> str:
    """The ``filename`` parameter as sent (python-multipart keeps only the last component of
    a Windows path): ArtifactFile keeps it as ``original_name`` and makes ``name`` safe."""
    filename = ""
    for match in _PARAM.finditer(disposition.decode("utf-8", "replace")):
        if match.group(1).lower() == "filename":  # the last one, as python-multipart takes it
            value = match.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1].replace("\\\\", "\\").replace('\\"', '"')
            filename = value
    return filename


def check_boundary(boundary: bytes) -> None:
    """400 for a boundary RFC 2046 does not allow, as soon as the headers are in: over 256
    characters python-multipart raises an exception the HTTP server does not expect (the client
    waited for the idle timeout), and no client has a reason to send one over 70."""
    if not BOUNDARY.fullmatch(boundary):
        reason = ("is empty" if not boundary else "is longer than 70 characters" if len(boundary) > 70
                  else "has characters RFC 2046 does not allow")
        raise HttpError(400, f"multipart boundary {reason}")


Body = Union[JsonBody, MultipartBody]


def body_for(content_type: str, uploads: Optional[Uploads] = None,
             max_file_bytes: Optional[int] = None, max_other_bytes: int = MAX_OTHER_BYTES) -> "Body":
    """The body parser for a request's Content-Type; 415 for types the protocol does not use.
    A body without a Content-Type is read as a JSON artifact, as the original did."""
    raw_type, params = parse_options_header(content_type or "")
    ctype = raw_type.decode("latin-1").lower()
    if ctype == "multipart/form-data":
        boundary = params.get(b"boundary")
        if boundary is None:
            raise HttpError(400, "multipart/form-data without a boundary")
        check_boundary(boundary)
        return MultipartBody(boundary, uploads, max_file_bytes, max_other_bytes)
    if not ctype or ctype in ("application/json", "text/json") or ctype.endswith("+json"):
        return JsonBody()  # no Content-Type: what `requests.post(url, json.dumps(artifact))` sends
    raise HttpError(415, "Content-Type must be multipart/form-data or application/json, "
                         f"not {ctype or 'none'!r}")
