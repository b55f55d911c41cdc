"""A reputation web API searcher, at /cts/reputation: the common shape of community
searchers (one REST call per artifact, an API key from config), done right.

Configured in ``[reputation_searcher]`` (every option and its default: config.py).

The API is ``GET <url>/<kind>/<value>`` (kind: ip, domain, url, hash) with the key in
``X-API-Key``, answering ``{"score": 0-100, "verdict": "...", "categories": [...], "link": "..."}``.
A 404, or a score of 0, is no hit.  429 and 5xx answers, timeouts and connection errors are
retried with back-off (honouring ``Retry-After``) up to ``max_attempts``, then the lookup is
reported incomplete so rc-cts asks again later.  401/403 mean a bad key: an error, logged.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional
from urllib.parse import quote

import requests
from circuits import BaseComponent, handler
from requests.adapters import HTTPAdapter

from rc_cts import Hit, NumberProp, StringProp, ThreatLookupIncompleteException, UriProp, searcher_channel

LOG = logging.getLogger(__name__)
SECTION = "reputation_searcher"
RETRYABLE = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 30.0


class RateLimiter:
    """At most ``rate`` calls per second across all worker threads (a token bucket of one)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class ReputationSearcher(BaseComponent):
    """Looks up IPs, host names, URLs and hashes in a reputation web API."""

    channel = searcher_channel("reputation")

    def __init__(self, opts=None):
        super().__init__()
        options = (opts or {}).get(SECTION, {})
        self.url = options.get("url", "").rstrip("/")
        self.api_key = options.get("api_key", "")
        self.timeout = float(options.get("timeout_secs", 10))
        self.max_attempts = max(1, int(options.get("max_attempts", 3)))
        self.backoff = float(options.get("backoff_secs", 1))
        self.limiter = RateLimiter(float(options.get("rate_limit_per_sec", 4)))
        self.session = requests.Session()  # one pool of kept-alive connections for every thread
        self.session.mount("https://", HTTPAdapter(pool_maxsize=64))
        self.session.mount("http://", HTTPAdapter(pool_maxsize=64))
        self.session.headers.update({"X-API-Key": self.api_key, "Accept": "application/json"})
        if not self.url:
            LOG.warning("[%s] has no 'url': /cts/reputation answers no hits until it has one", SECTION)

    def query(self, kind: str, value: str) -> Optional[dict]:
        """The API's answer, or None for no data; raises ThreatLookupIncompleteException
        when the API stays busy or unreachable, and RuntimeError for a rejected key."""
        url = f"{self.url}/{kind}/{quote(str(value), safe='')}"
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            self.limiter.wait()
            delay = self.backoff * 2 ** (attempt - 1)
            try:
                response = self.session.get(url, timeout=self.timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = f"{type(exc).__name__}"
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code == 404:
                    return None
                if response.status_code in (401, 403):
                    raise RuntimeError(f"reputation API rejected the API key ({response.status_code})")
                if response.status_code not in RETRYABLE:
                    raise RuntimeError(f"reputation API answered {response.status_code}")
                reason = f"HTTP {response.status_code}"
                delay = max(delay, _retry_after(response.headers.get("Retry-After")))
            if attempt < self.max_attempts:
                LOG.info("reputation API %s for a %s lookup; retrying in %.1fs", reason, kind, delay)  # no value at INFO
                time.sleep(delay)
        raise ThreatLookupIncompleteException(f"reputation API: {reason} after {self.max_attempts} attempts")

    def _lookup(self, kind: str, event):
        if not self.url:
            return None
        return reputation_hit(self.query(kind, event.artifact["value"]))

    @handler("net.ip")
    def _lookup_net_ip(self, event, *args, **kwargs):
        return self._lookup("ip", event)

    @handler("net.name")
    def _lookup_net_name(self, event, *args, **kwargs):
        return self._lookup("domain", event)

    @handler("net.uri")
    def _lookup_net_uri(self, event, *args, **kwargs):
        return self._lookup("url", event)

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    def _lookup_hash(self, event, *args, **kwargs):
        return self._lookup("hash", event)


def reputation_hit(answer: Optional[dict]) -> Optional[Hit]:
    """The hit for the API's answer: score, verdict, categories, a link to the report; None for
    no data or a score of 0."""
    if not answer or not answer.get("score"):
        return None
    hit = Hit(NumberProp(name="Score", value=answer.get("score")),
              StringProp(name="Verdict", value=answer.get("verdict")),
              StringProp(name="Categories", value=", ".join(answer.get("categories") or []) or None))
    if answer.get("link"):
        hit.append(UriProp(name="Report", value=answer["link"]))
    return hit


def _retry_after(header: Optional[str]) -> float:
    try:
        return min(max(float(header), 0.0), MAX_RETRY_AFTER) if header else 0.0
    except ValueError:
        return 0.0
