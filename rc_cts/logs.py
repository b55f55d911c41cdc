"""Logging of standalone ``rc-cts``: to stderr, and to a rotating file, as plain text or JSON
lines, from the ``[resilient]`` log options resilient-circuits uses for the same thing.

Under the resilient-circuits daemon, the daemon configures logging; nothing here runs.
"""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import re
import sys
from datetime import datetime, timezone
from typing import List, Optional

PLAIN_FORMAT = "%(asctime)s %(levelname)s [%(name)s] %(message)s"
DEFAULT_LOGFILE = "app.log"  # resilient-circuits' default name
_URL_PASSWORD = re.compile(r"(\w+://[^:/@\s]*:)[^\s/]*@")  # up to the netloc's last @


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line, for log collectors: time (UTC, ISO 8601),
    level, logger, message, and exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)  # ASCII only: any stream can write it


def mask_secrets(text: str) -> str:
    """``scheme://user:password@host`` with the password masked, for messages and logs."""
    return _URL_PASSWORD.sub(r"\1***@", text) if "@" in text else text


class MaskSecrets(logging.Formatter):
    """Masks passwords in URLs in the whole formatted record, message and traceback alike (a
    redis_url in an exception's text, say); a line without an ``@`` costs one substring test.
    A formatter, not a filter: a record that cannot be formatted is the handler's to report."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self.inner.format(record))


def _formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT)


def log_path(logdir: Optional[str], logfile: Optional[str]) -> Optional[str]:
    """``<logdir>/<logfile>`` when either is set (resilient-circuits joins them the same way)."""
    if not logdir and not logfile:
        return None
    return os.path.join(os.path.expanduser(logdir or "."), os.path.expanduser(logfile or DEFAULT_LOGFILE))


def file_handler(path: str, max_bytes: int, backup_count: int) -> logging.Handler:
    """A RotatingFileHandler; OSError if the file cannot be opened.  A zero for either number
    never rotates (as resilient-circuits documents it), rather than reopening at every record."""
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    rotate = max_bytes if max_bytes > 0 and backup_count > 0 else 0
    return logging.handlers.RotatingFileHandler(path, maxBytes=rotate, backupCount=backup_count,
                                                encoding="utf-8")


URL_LOGGERS = ("httpx", "httpcore", "urllib3", "aiohttp.client")  # HTTP clients searchers use


def quiet_url_loggers() -> None:
    """HTTP clients log each request's URL at INFO (httpx does), and a searcher's URL holds
    the artifact value, which is logged at DEBUG only: theirs go to WARNING unless someone
    set their level already, or the root logs DEBUG."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


def configure(level: str, log_format: str = "plain", handlers: Optional[List[logging.Handler]] = None) -> None:
    """Replace the root logger's handlers with stderr plus ``handlers``, all with one format."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if not isinstance(old, logging.StreamHandler) or isinstance(old, logging.FileHandler):
            old.close()
    formatter = _formatter(log_format)
    for handler in [logging.StreamHandler(sys.stderr), *(handlers or [])]:
        handler.setFormatter(MaskSecrets(formatter))
        root.addHandler(handler)
    root.setLevel(level.upper())
    quiet_url_loggers()
