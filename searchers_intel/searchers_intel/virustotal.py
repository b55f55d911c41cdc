"""VirusTotal, at /cts/virustotal: what the antivirus engines and URL scanners VirusTotal runs
last said about a file hash, a URL, a domain or an IP address (API v3, a free key is enough).

Every call is a ``GET`` with the key in the ``x-apikey`` header:

* ``/api/v3/files/<md5|sha1|sha256>``
* ``/api/v3/urls/<url id>``: the id is the URL in URL-safe base64 without its ``=`` padding
  (VirusTotal canonicalises it on its side)
* ``/api/v3/domains/<domain>``
* ``/api/v3/ip_addresses/<ip>``

Each answers ``{"data": {"id", "type", "attributes": {...}}}`` where the attributes hold
``last_analysis_stats`` (``{"malicious", "suspicious", "harmless", "undetected", ...}``: how
many engines said what), ``reputation``, ``tags`` and Unix times: ``first_submission_date``
(files, URLs) or ``first_seen_date`` (domains, IPs), ``last_analysis_date``,
``last_modification_date``.  An error is ``{"error": {"code", "message"}}``: 404
``NotFoundError`` (VirusTotal does not know it: no hit), 401 ``WrongCredentialsError``
(a bad key), 429 ``QuotaExceededError`` (a quota window is spent).

A hit when at least one engine says malicious or suspicious: its verdict, the number of
engines that say malicious as its score, "malicious/engines with a verdict" as detections.
Configured in ``[virustotal_searcher]``: ``api_key``, ``url``, ``timeout_secs``.
"""
from __future__ import annotations

import base64
import ipaddress
import logging
import re
from datetime import datetime, timezone
from typing import Any, Dict, NoReturn, Optional
from urllib.parse import quote

from circuits import handler

from rc_cts import Hit, LookupFailed, searcher_channel

from .base import IntelSearcher, expect, intel_hit

LOG = logging.getLogger(__name__)

CONFIG = """\
[virustotal_searcher]
# VirusTotal API v3 (/cts/virustotal): file hashes, URLs, domains, IP addresses. A free
# (public API) key is enough. Its quota and cache are declared on the searcher (4/minute,
# 500/day, 15500/month; answers kept 12 hours); override them in
# [custom_threat_service.virustotal] (a premium key has its own quota).
api_key = $VIRUSTOTAL_API_KEY
#url = https://www.virustotal.com/api/v3
timeout_secs = 15
"""

GUI = "https://www.virustotal.com/gui"
HASH_LENGTHS = {"hash.md5": 32, "hash.sha1": 40, "hash.sha256": 64}
HEX = re.compile(r"^[0-9a-fA-F]+$")
VERDICT_STATS = ("malicious", "suspicious", "harmless", "undetected")  # engines that gave a verdict


def url_id(url: str) -> str:
    """VirusTotal's identifier of a URL: its URL-safe base64, without the ``=`` padding."""
    return base64.urlsafe_b64encode(url.encode("utf-8")).decode("ascii").rstrip("=")


def iso_date(value: Any) -> Optional[str]:
    """A Unix time as an ISO 8601 UTC date (None if it is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    try:
        return datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return None


class VirusTotalSearcher(IntelSearcher):
    """Detections of file hashes, URLs, domains and IP addresses, from VirusTotal."""

    channel = searcher_channel("virustotal")
    section = "virustotal_searcher"
    provider = "VirusTotal"
    base_url = "https://www.virustotal.com/api/v3"
    key_header = "x-apikey"
    # Public API: 4 lookups a minute, 500 a day, 15.5K a month (per key). Its 429 carries no
    # Retry-After: rc-cts then pauses the searcher DEFAULT_PAUSE_SECS (a minute) and asks again.
    rate_limit = "4/minute, 500/day, 15500/month"
    max_concurrency = 4
    # One TTL for every type: a hash's verdict holds for days, a URL's or an IP's for hours;
    # with 500 lookups a day, half a day for both (and for clean or unknown ones, 6 hours).
    cache_ttl_secs = 43200
    no_hit_ttl_secs = 21600

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    async def lookup_hash(self, event, *args, **kwargs) -> Optional[Hit]:
        value = str(event.artifact["value"]).strip()
        if len(value) != HASH_LENGTHS.get(event.name, 0) or not HEX.match(value):
            LOG.debug("VirusTotal: %s %r is not a hash of that type: not looked up", event.name, value)
            return None
        return await self.report("/files/" + value.lower(), "file")

    @handler("net.uri")
    async def lookup_url(self, event, *args, **kwargs) -> Optional[Hit]:
        value = str(event.artifact["value"]).strip()
        return await self.report("/urls/" + url_id(value), "url") if value else None

    @handler("net.name")
    async def lookup_domain(self, event, *args, **kwargs) -> Optional[Hit]:
        value = str(event.artifact["value"]).strip().rstrip(".").lower()
        if not value or any(c in value for c in "/ \\?#@"):
            return None
        return await self.report("/domains/" + quote(value, safe=""), "domain")

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        try:
            value = str(ipaddress.ip_address(str(event.artifact["value"]).strip()))
        except ValueError:
            return None
        return await self.report("/ip_addresses/" + quote(value, safe=":"), "ip-address")

    async def report(self, path: str, kind: str) -> Optional[Hit]:
        """The hit for the object at ``path`` (``kind``: its page on the GUI), or None."""
        if not self.configured:
            return None
        answer = await self.request("GET", path)
        if answer is None:
            return None  # NotFoundError: VirusTotal has never seen it
        data = expect(expect(answer, dict, "answer", self.provider).get("data"), dict, "data object",
                      self.provider)
        attributes = expect(data.get("attributes"), dict, "attributes object", self.provider)
        stats = expect(attributes.get("last_analysis_stats") or {}, dict, "last_analysis_stats",
                       self.provider)
        counts: Dict[str, int] = {}
        for name in VERDICT_STATS:
            count = stats.get(name, 0)
            if isinstance(count, bool) or not isinstance(count, int):
                raise_malformed(self.provider, f"last_analysis_stats count ({type(count).__name__})")
            counts[name] = count
        if counts["malicious"] + counts["suspicious"] <= 0:
            return None  # no engine flags it: clean, or not analysed yet
        tags = expect(attributes.get("tags") or [], list, "tags list", self.provider)
        object_id = data.get("id")
        if not isinstance(object_id, str) or not object_id:
            raise_malformed(self.provider, "data id")
        threat = attributes.get("popular_threat_classification")
        reputation = attributes.get("reputation")
        return intel_hit(
            self.provider,
            verdict="malicious" if counts["malicious"] else "suspicious",
            score=counts["malicious"],
            first_seen=iso_date(attributes.get("first_submission_date") or attributes.get("first_seen_date")),
            last_seen=iso_date(attributes.get("last_analysis_date") or attributes.get("last_submission_date")
                               or attributes.get("last_modification_date")),
            tags=[str(t) for t in tags],
            detections=f"{counts['malicious']}/{sum(counts.values())}",
            reputation=reputation if isinstance(reputation, int) and not isinstance(reputation, bool) else None,
            threat_label=threat.get("suggested_threat_label") if isinstance(threat, dict) else None,
            file_type=attributes.get("type_description") if kind == "file" else None,
            link=f"{GUI}/{kind}/{quote(object_id, safe=':')}",
        )


def raise_malformed(provider: str, what: str) -> NoReturn:
    """The answer is not as documented: the call fails (the message names no artifact)."""
    raise LookupFailed(f"{provider} answered a malformed {what}")
