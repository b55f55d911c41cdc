"""Local threat-intel feeds: answers lookups from indicator files on disk, at /cts/feeds.

Configured in ``[feed_searcher]``: one ``feed.<name> = <path>`` line per feed file (every
option and its default: config.py).

Files are re-read when they change (checked at most every ``reload_check_secs`` seconds,
during a lookup); a file that disappears or cannot be read keeps its last good content.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Dict, List, Tuple

from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, UriProp, searcher_channel

from .indicators import FeedIndex, IndicatorSet, Match, load_feed

LOG = logging.getLogger(__name__)
SECTION = "feed_searcher"
FEED_PREFIX = "feed."


def hit_for(match: Match) -> Hit:
    """Feed, indicator, how it matched, then the feed's other columns (links only for
    columns named ``*link`` / ``*reference``: a malicious URL must not be clickable)."""
    hit = Hit(StringProp(name="Feed", value=match.feed), StringProp(name="Indicator", value=match.indicator),
              StringProp(name="Match", value=match.how))
    for name, value in match.columns:
        if not value or value == match.indicator:
            continue
        linky = name.lower().endswith(("link", "reference")) and value.startswith(("http://", "https://"))
        hit.append(UriProp(name=name, value=value) if linky else StringProp(name=name, value=value))
    return hit


class Feeds:
    """The configured feed files, loaded once and re-read when they change.  Shared: the feed
    searcher and the file analyser with the same [feed_searcher] options use one instance."""

    _shared: Dict[tuple, "Feeds"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, options: Dict[str, str]) -> "Feeds":
        key = tuple(sorted((k, v) for k, v in options.items() if isinstance(v, str)))
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(options)
            return cls._shared[key]

    def __init__(self, options: Dict[str, str]):
        self.paths: Dict[str, str] = {k[len(FEED_PREFIX):]: os.path.expanduser(v)
                                      for k, v in options.items() if k.startswith(FEED_PREFIX) and v}
        self.reload_check_secs = float(options.get("reload_check_secs", 30))
        self._loaded: Dict[str, Tuple[Tuple[int, int], FeedIndex]] = {}
        self._lock = threading.Lock()
        self._checked = 0.0
        self.indicators = IndicatorSet()
        self.reload()

    def reload(self) -> None:
        """Re-read every feed file that changed since it was read."""
        changed = False
        for name, path in self.paths.items():
            try:
                stat = os.stat(path)
                signature = (stat.st_mtime_ns, stat.st_size)
                if name in self._loaded and self._loaded[name][0] == signature:
                    continue
                with open(path, encoding="utf-8", errors="replace") as fh:
                    feed, skipped = load_feed(name, fh.read())
            except OSError as exc:
                LOG.error("feed %s: cannot read %s (%s); keeping what was loaded before", name, path, exc)
                continue
            self._loaded[name] = (signature, feed)
            changed = True
            LOG.info("feed %s: %d indicators from %s%s", name, feed.count, path,
                     f" ({skipped} lines were no indicator)" if skipped else "")
        if changed:
            self.indicators = IndicatorSet([feed for _, feed in self._loaded.values()])  # atomic swap
        self._checked = time.monotonic()

    def _fresh(self) -> IndicatorSet:
        if time.monotonic() - self._checked >= self.reload_check_secs and self._lock.acquire(blocking=False):
            try:
                self.reload()
            finally:
                self._lock.release()
        return self.indicators

    def matches(self, kind: str, value: str) -> List[Match]:
        """Matches of ``value`` as ``kind`` (ip, cidr, domain, url, hash, email); bad values match nothing."""
        try:
            return getattr(self._fresh(), kind)(str(value))
        except ValueError:
            LOG.debug("feeds: %r is not a valid %s", value, kind)
            return []


class FeedSearcher(BaseComponent):
    """Matches net.ip (and CIDR ranges in the feeds), net.cidr, net.name and net.uri (with
    parent domains), file hashes and sender addresses against the configured feeds."""

    channel = searcher_channel("feeds")

    def __init__(self, opts=None):
        super().__init__()
        self.feeds = Feeds.shared((opts or {}).get(SECTION, {}))

    def _hits(self, kind: str, event) -> List[Hit]:
        return [hit_for(m) for m in self.feeds.matches(kind, event.artifact["value"])]

    # -- one handler per artifact type -----------------------------------------------------
    @handler("net.ip")
    def _lookup_net_ip(self, event, *args, **kwargs):
        return self._hits("ip", event)

    @handler("net.cidr")
    def _lookup_net_cidr(self, event, *args, **kwargs):
        return self._hits("cidr", event)

    @handler("net.name")
    def _lookup_net_name(self, event, *args, **kwargs):
        return self._hits("domain", event)

    @handler("net.uri")
    def _lookup_net_uri(self, event, *args, **kwargs):
        return self._hits("url", event)

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    def _lookup_hash(self, event, *args, **kwargs):
        return self._hits("hash", event)

    @handler("email.header.sender_address")
    def _lookup_sender(self, event, *args, **kwargs):
        return self._hits("email", event)
