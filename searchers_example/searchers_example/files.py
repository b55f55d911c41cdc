"""File analysis, at /cts/files: hashes, file type, YARA rules, and the feed searcher's hash
lists, for uploaded files (``file.content``), emails (``email``: sender, URLs, attachments)
and hashes by value.

Configured in ``[file_searcher]`` (``rules_dir``: see config.py), and the feeds in
``[feed_searcher]`` (shared with the feed searcher: loaded once).
"""
from __future__ import annotations

import email
import email.policy
import hashlib
import io
import logging
import os
import re
import threading
import time
from typing import BinaryIO, Dict, Iterable, List, Optional, Tuple

import puremagic
import yara
from circuits import BaseComponent, handler

from rc_cts import Hit, NumberProp, StringProp, searcher_channel

from .feeds import SECTION as FEED_SECTION
from .feeds import Feeds, hit_for

LOG = logging.getLogger(__name__)
SECTION = "file_searcher"
RULE_SUFFIXES = (".yar", ".yara")
URL = re.compile(r"""https?://[^\s"'<>()\[\]]+""", re.IGNORECASE)
MAX_URLS = 200
YARA_TIMEOUT_SECS = 60


class FileFacts:
    """What is known of one file: its hashes, size and type."""

    def __init__(self, name: str, stream: BinaryIO):
        md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
        self.size = 0
        head = b""
        for block in iter(lambda: stream.read(1024 * 1024), b""):
            if not head:
                head = block[:8192]
            self.size += len(block)
            md5.update(block)
            sha1.update(block)
            sha256.update(block)
        self.name = name
        self.md5, self.sha1, self.sha256 = md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest()
        self.type = file_type(head)

    def props(self) -> List[dict]:
        return [StringProp(name="File", value=self.name or None), NumberProp(name="Size", value=self.size),
                StringProp(name="File type", value=self.type), StringProp(name="MD5", value=self.md5),
                StringProp(name="SHA1", value=self.sha1), StringProp(name="SHA256", value=self.sha256)]


def file_type(head: bytes) -> str:
    """A name for the file's type from its magic bytes (puremagic)."""
    if not head:
        return "empty"
    try:
        best = puremagic.magic_string(head)[0]
    except (puremagic.PureError, IndexError, ValueError):
        return "unknown"
    return f"{best.name} ({best.mime_type})" if best.mime_type else best.name


class YaraRules:
    """The rules in a directory, compiled once and again when a rule file changes;
    a rule file that does not compile keeps the last good rules (logged)."""

    def __init__(self, rules_dir: Optional[str], reload_check_secs: float):
        self.rules_dir = os.path.expanduser(rules_dir) if rules_dir else None
        self.reload_check_secs = reload_check_secs
        self.rules: Optional[yara.Rules] = None
        self._signature: Tuple = ()
        self._checked = 0.0
        self._lock = threading.Lock()
        self.reload()

    def _files(self) -> Dict[str, str]:
        if not self.rules_dir or not os.path.isdir(self.rules_dir):
            return {}
        return {os.path.splitext(n)[0]: os.path.join(self.rules_dir, n)
                for n in sorted(os.listdir(self.rules_dir)) if n.endswith(RULE_SUFFIXES)}

    def reload(self) -> None:
        files = self._files()
        try:
            signature = tuple((p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in files.values())
        except OSError:
            signature = ()
        if signature != self._signature:
            try:
                self.rules = yara.compile(filepaths=files) if files else None
                LOG.info("YARA: %d rule files compiled from %s", len(files), self.rules_dir)
            except yara.Error as exc:
                LOG.error("YARA: rules in %s do not compile (%s); keeping the previous ones", self.rules_dir, exc)
            self._signature = signature
        self._checked = time.monotonic()

    def match(self, path: Optional[str] = None, data: Optional[bytes] = None) -> List["yara.Match"]:
        if time.monotonic() - self._checked >= self.reload_check_secs and self._lock.acquire(blocking=False):
            try:
                self.reload()
            finally:
                self._lock.release()
        rules = self.rules
        if rules is None:
            return []
        if path is not None:
            return rules.match(filepath=path, timeout=YARA_TIMEOUT_SECS)
        return rules.match(data=data, timeout=YARA_TIMEOUT_SECS)


def rule_hit(match: "yara.Match", facts: FileFacts, where: str = "") -> Hit:
    """One hit per matching rule: its name, tags and meta fields."""
    hit = Hit(StringProp(name="YARA rule", value=match.rule),
              StringProp(name="Rule file", value=match.namespace),
              StringProp(name="Tags", value=", ".join(match.tags) or None),
              StringProp(name="Found in", value=where or None))
    for key, value in match.meta.items():
        hit.append(NumberProp(name=key, value=value) if isinstance(value, (int, float)) and
                   not isinstance(value, bool) else StringProp(name=key, value=str(value)))
    hit.extend(facts.props())
    return hit


class FileSearcher(BaseComponent):
    """Analyses uploaded files and emails; the platform uploads them because of upload_file."""

    channel = searcher_channel("files")
    upload_file = True

    def __init__(self, opts=None):
        super().__init__()
        opts = opts or {}
        options = opts.get(SECTION, {})
        self.rules = YaraRules(options.get("rules_dir"), float(options.get("reload_check_secs", 30)))
        self.feeds = Feeds.shared(opts.get(FEED_SECTION, {}))

    def _file_hits(self, facts: FileFacts, path: Optional[str] = None, data: Optional[bytes] = None,
                   where: str = "") -> List[Hit]:
        hits = [rule_hit(m, facts, where) for m in self.rules.match(path=path, data=data)]
        for digest in dict.fromkeys((facts.sha256, facts.sha1, facts.md5)):
            for match in self.feeds.matches("hash", digest):
                hit = hit_for(match)
                hit.append(StringProp(name="Found in", value=where or None))
                hit.extend(facts.props())
                hits.append(hit)
        return hits

    @handler("file.content")
    def _lookup_file_content(self, event, *args, **kwargs):
        if event.file is None:
            return None  # the platform sends the content only to services with upload_file
        name = event.file.name if event.file.original_name else str(event.artifact["value"])
        with event.file.open() as stream:
            facts = FileFacts(name, stream)
        return self._file_hits(facts, path=event.file.path)

    @handler("email")
    def _lookup_email(self, event, *args, **kwargs):
        """An RFC 822 message: its sender, the URLs in its text, and its attachments."""
        if event.file is not None:
            with event.file.open() as stream:
                message = email.message_from_binary_file(stream, policy=email.policy.default)
        else:
            message = email.message_from_string(str(event.artifact["value"]), policy=email.policy.default)
        hits: List[Hit] = []
        for address in _addresses(message.get("From")):
            hits += self._found(self.feeds.matches("email", address), f"sender {address}")
        for url in _urls(message):
            hits += self._found(self.feeds.matches("url", url), f"URL {url}")
        for part in message.iter_attachments():
            data = part.get_payload(decode=True) or b""
            name = part.get_filename() or "attachment"
            facts = FileFacts(name, io.BytesIO(data))
            hits += self._file_hits(facts, data=data, where=f"attachment {name}")
        return hits

    @staticmethod
    def _found(matches, where: str) -> List[Hit]:
        hits = []
        for match in matches:
            hit = hit_for(match)
            hit.append(StringProp(name="Found in", value=where))
            hits.append(hit)
        return hits

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    def _lookup_hash(self, event, *args, **kwargs):
        return [hit_for(m) for m in self.feeds.matches("hash", event.artifact["value"])]


def _addresses(header) -> Iterable[str]:
    if header is None:
        return []
    try:
        return [a.addr_spec for a in header.addresses if a.addr_spec]
    except AttributeError:
        return [str(header)]


def _urls(message) -> List[str]:
    found: Dict[str, None] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text" and not part.is_attachment():
            try:
                text = part.get_content()
            except (LookupError, ValueError):
                continue
            for url in URL.findall(text):
                found.setdefault(url.rstrip(".,;:!?"), None)
                if len(found) >= MAX_URLS:
                    return list(found)
    return list(found)
