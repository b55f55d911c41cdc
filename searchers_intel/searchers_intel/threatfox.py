"""abuse.ch ThreatFox, at /cts/threatfox: indicators of compromise (botnet C&Cs, payload
delivery URLs, samples) shared by the community, with their malware family and confidence.

Every call is ``POST https://threatfox-api.abuse.ch/api/v1/`` with a JSON body and the
``Auth-Key`` header (see ``abusech``):

- an IP address, domain or URL (net.ip, net.name, net.uri):
  ``{"query": "search_ioc", "search_term": <value>}``;
- a file hash (hash.md5, hash.sha256): ``{"query": "search_hash", "hash": <hash>}``, the IOCs
  (C&Cs...) the sample with that hash is known to use.

Both answer ``{"query_status": "ok", "data": [{"id", "ioc" ("1.2.3.4:443", a domain, a URL),
"threat_type" ("botnet_cc"...), "threat_type_desc", "ioc_type" ("ip:port", "domain",
"url"...), "malware", "malware_printable", "malware_alias", "malware_malpedia",
"confidence_level" (0-100), "first_seen", "last_seen", "reference", "reporter", "tags",
"malware_samples"}...]}``, or ``{"query_status": "no_result"}`` (no hit); an IOC search may
also match IOCs that merely contain the value, so only IOCs on the artifact itself count (an
``ip:port`` or URL on that IP or domain, that very URL).  ``illegal_search_term`` /
``illegal_hash`` reject the value (no hit).  A hit's verdict is the threat type, its score the
highest confidence level, its link ``https://threatfox.abuse.ch/ioc/<id>/``.  Configured in
``[threatfox_searcher]``: ``api_key``, ``url``, ``timeout_secs``.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import quote, urlsplit

from circuits import handler

from rc_cts import Hit, searcher_channel

from .abusech import AbuseChSearcher, artifact_value
from .base import expect, intel_hit

CONFIG = """\
[threatfox_searcher]
# abuse.ch ThreatFox (/cts/threatfox): IOCs (C&Cs, payload URLs) of malware families. It needs a
# free abuse.ch Auth-Key (https://auth.abuse.ch/; one key serves URLhaus, ThreatFox, MalwareBazaar).
# Its quota and cache are declared on the searcher (1/second; hits kept 6 hours); override them
# in [custom_threat_service.threatfox].
api_key = $ABUSE_CH_AUTH_KEY
#url = https://threatfox-api.abuse.ch
timeout_secs = 15
"""

IOC_LINK = "https://threatfox.abuse.ch/ioc/{}/"
MAX_LISTED = 10


def _same_host(a: str, b: str) -> bool:
    a, b = a.strip().strip("[]").lower(), b.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return bool(a) and a == b


def _ioc_host(ioc: str, ioc_type: str) -> str:
    """The IP address or domain an IOC is on: ``1.2.3.4:443`` -> ``1.2.3.4``."""
    if ioc_type == "url":
        try:
            return urlsplit(ioc).hostname or ""
        except ValueError:
            return ""
    if ioc_type == "ip:port":
        return ioc.rsplit(":", 1)[0]
    return ioc


def _confidence(entry: Dict[str, Any]) -> Optional[float]:
    """Its confidence level (0-100), None if it has none that is a number."""
    level = entry.get("confidence_level")
    return level if isinstance(level, (int, float)) and not isinstance(level, bool) else None


def _same_url(a: str, b: str) -> bool:
    try:
        pa, pb = urlsplit(a.strip()), urlsplit(b.strip())
    except ValueError:
        return False
    return (pa.scheme.lower(), pa.netloc.lower(), pa.path.rstrip("/"), pa.query) == \
        (pb.scheme.lower(), pb.netloc.lower(), pb.path.rstrip("/"), pb.query)


class ThreatFoxSearcher(AbuseChSearcher):
    """IOCs on an IP address, domain or URL, and those a file hash's sample uses, from ThreatFox."""

    channel = searcher_channel("threatfox")
    section = "threatfox_searcher"
    provider = "ThreatFox"
    base_url = "https://threatfox-api.abuse.ch"
    path = "/api/v1/"
    not_found_statuses = frozenset({"no_result", "no_results", "hash_not_found"})
    invalid_statuses = frozenset({"illegal_search_term", "illegal_hash"})
    # abuse.ch publishes no number, only fair use of its free API: one call a second (the Auth-Key
    # is shared with URLhaus and MalwareBazaar), two at a time.
    rate_limit = "1/second"
    max_concurrency = 2
    cache_ttl_secs = 21600       # IOCs get new sightings: hits kept 6 hours
    no_hit_ttl_secs = 3600       # new IOCs are shared all day

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        ip = artifact_value(event)
        return await self.search_ioc(ip, "net.ip", lambda e: _same_host(_ioc_host(*e), ip))

    @handler("net.name")
    async def lookup_name(self, event, *args, **kwargs) -> Optional[Hit]:
        name = artifact_value(event).rstrip(".")
        return await self.search_ioc(name, "net.name", lambda e: _same_host(_ioc_host(*e), name))

    @handler("net.uri")
    async def lookup_url(self, event, *args, **kwargs) -> Optional[Hit]:
        url = artifact_value(event)
        return await self.search_ioc(url, "net.uri", lambda e: e[1] == "url" and _same_url(e[0], url))

    @handler("hash.md5")
    async def lookup_md5(self, event, *args, **kwargs) -> Optional[Hit]:
        return await self.search_hash(artifact_value(event), "hash.md5")

    @handler("hash.sha256")
    async def lookup_sha256(self, event, *args, **kwargs) -> Optional[Hit]:
        return await self.search_hash(artifact_value(event), "hash.sha256")

    async def search_ioc(self, value: str, artifact_type: str,
                         on_artifact: Callable[[Tuple[str, str]], bool]) -> Optional[Hit]:
        """A hit for the IOCs found for ``value`` that ``on_artifact((ioc, ioc_type))`` keeps."""
        if not value or not self.configured:
            return None
        answer = await self.query(self.path, artifact_type,
                                  json={"query": "search_ioc", "search_term": value})
        if answer is None:
            return None
        iocs = [e for e in self.entries(answer)
                if on_artifact((str(e.get("ioc") or ""), str(e.get("ioc_type") or "")))]
        return self.ioc_hit(iocs, "indicators")

    async def search_hash(self, value: str, artifact_type: str) -> Optional[Hit]:
        if not value or not self.configured:
            return None
        answer = await self.query(self.path, artifact_type, json={"query": "search_hash", "hash": value})
        return None if answer is None else self.ioc_hit(self.entries(answer), "associated_indicators")

    def entries(self, answer: Dict[str, Any]) -> List[Dict[str, Any]]:
        data = expect(answer.get("data") or [], list, "data list", self.provider)
        return [expect(e, dict, "IOC record", self.provider) for e in data]

    def ioc_hit(self, iocs: List[Dict[str, Any]], listed_as: str) -> Optional[Hit]:
        if not iocs:
            return None  # only IOCs that merely contain the value: nothing on the artifact itself
        confidences = [c for c in map(_confidence, iocs) if c is not None]
        best = max(iocs, key=lambda e: _confidence(e) or 0.0)
        tags: List[str] = []
        for entry in iocs:
            tags.extend(str(t) for t in expect(entry.get("tags") or [], list, "tags list", self.provider) if t)
        first = sorted(str(e["first_seen"]) for e in iocs if e.get("first_seen"))
        last = sorted(str(e["last_seen"]) for e in iocs if e.get("last_seen"))
        ioc_id = str(best.get("id") or "").strip()
        details: Dict[str, Any] = {
            "malware": sorted({str(e["malware_printable"]) for e in iocs if e.get("malware_printable")}),
            "threat": best.get("threat_type_desc"),
            listed_as: sorted({str(e["ioc"]) for e in iocs if e.get("ioc")})[:MAX_LISTED],
        }
        return intel_hit(self.provider, verdict=best.get("threat_type") or "IOC",
                         score=max(confidences) if confidences else None,
                         first_seen=first[0] if first else None, last_seen=last[-1] if last else None,
                         tags=tags, link=IOC_LINK.format(quote(ioc_id, safe="")) if ioc_id else None,
                         **details)
