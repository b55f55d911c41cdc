"""AlienVault OTX (Open Threat Exchange), at /cts/otx: the community "pulses" (threat reports)
an IP address, domain, host name, URL or file hash is an indicator of.

``GET https://otx.alienvault.com/api/v1/indicators/<type>/<value>/general`` with the header
``X-OTX-API-KEY: <api key>``, where the type is ``IPv4``, ``IPv6``, ``domain``, ``hostname``,
``url`` (the URL percent-encoded into one path segment) or ``file`` (an MD5, SHA-1 or SHA-256),
answers ``{"indicator", "type", "type_title", "base_indicator", "pulse_info": {"count",
"pulses": [{"id", "name", "created", "modified", "tags", "adversary", "malware_families":
[{"id", "display_name"}], "attack_ids": [...], "TLP", ...}], "references", "related"},
"false_positive", "validation": [{"source", "message", "name"}], "sections", ...}``.  An
indicator in at least one pulse (``pulse_info.count > 0``) is a hit; none is no hit, and so is
404 (unknown) or 400 (a value OTX does not take for its type).  403 for a wrong key; 429 when
throttled (OTX sends no Retry-After: rc-cts waits its default pause).

A host name (``net.name``) with more than two labels is looked up as a ``hostname``
("www.example.com"), one with two as a ``domain`` ("example.com"): a registered domain under a
two-label suffix ("example.co.uk") is thus asked as a host name, which OTX also answers.
Addresses that are not public (private, loopback, documentation...) are not looked up.

Configured in ``[otx_searcher]``: ``api_key``, ``url``, ``timeout_secs``.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from circuits import handler

from rc_cts import Hit, LookupFailed, searcher_channel

from .artifacts import public_ip
from .base import IntelSearcher, expect, intel_hit

CONFIG = """\
[otx_searcher]
# AlienVault OTX (/cts/otx): the "OTX Key" of a free account (its settings, API Integration).
# Its quota and cache are declared on the searcher (2 calls a second, 1000 an hour; hits kept
# 12 hours); override them in [custom_threat_service.otx].
api_key = $OTX_API_KEY
#url = https://otx.alienvault.com
timeout_secs = 20
"""

HASH_LENGTHS = {"hash.md5": 32, "hash.sha1": 40, "hash.sha256": 64}
HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
MAX_TAGS = 25
MAX_PULSE_NAMES = 10


def host_name(value: Any) -> Optional[str]:
    """``value`` as a DNS name in lower case, ASCII (punycode) and without a trailing dot; None
    if it is not one (an IP address is not a name here)."""
    name = str(value).strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")  # an internationalized name, as DNS has it
    except UnicodeError:
        return None
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(HOST_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # an IPv4 address
    return name


class OTXSearcher(IntelSearcher):
    """Threat pulses naming an IP address, host name, URL or file hash, from AlienVault OTX."""

    channel = searcher_channel("otx")
    section = "otx_searcher"
    provider = "AlienVault OTX"
    base_url = "https://otx.alienvault.com"
    key_header = "X-OTX-API-KEY"
    # OTX publishes no number for its API quota (it answers 429 when it throttles, without
    # Retry-After): a conservative 2 calls a second and 1000 an hour.
    rate_limit = "2/second, 1000/hour"
    max_concurrency = 4
    cache_ttl_secs = 43200       # pulses are added and edited over days
    no_hit_ttl_secs = 21600

    async def lookup(self, kind: str, value: str) -> Optional[Hit]:
        """The hit for indicator ``value`` of OTX type ``kind``, or None."""
        if not self.configured:
            return None
        segment = quote(value, safe="")
        answer = await self.request("GET", f"/api/v1/indicators/{kind}/{segment}/general",
                                    not_found=(404, 400))  # 400: a value it does not take for the type
        if answer is None:
            return None
        data: Dict[str, Any] = expect(answer, dict, "indicator record", self.provider)
        pulse_info = expect(data.get("pulse_info") or {}, dict, "pulse_info", self.provider)
        count = pulse_info.get("count") or 0
        if isinstance(count, bool) or not isinstance(count, int):
            raise LookupFailed(f"{self.provider} answered a malformed pulse count: {type(count).__name__}")
        if count <= 0:
            return None  # in no pulse: nothing known against it
        pulses = [p for p in expect(pulse_info.get("pulses") or [], list, "pulses list", self.provider)
                  if isinstance(p, dict)]
        tags: List[str] = []
        for pulse in pulses:
            for tag in expect(pulse.get("tags") or [], list, "pulse tags", self.provider):
                if isinstance(tag, str) and tag.strip() and tag.strip().lower() not in map(str.lower, tags):
                    tags.append(tag.strip())
        created = sorted(str(p["created"]) for p in pulses if p.get("created"))
        modified = sorted(str(p.get("modified") or p.get("created")) for p in pulses
                          if p.get("modified") or p.get("created"))
        families = {str(f.get("display_name") or f.get("id")) for p in pulses
                    for f in (p.get("malware_families") or []) if isinstance(f, dict)}
        adversaries = {str(p["adversary"]) for p in pulses if p.get("adversary")}
        validation = [str(v.get("name") or v.get("message")) for v in (data.get("validation") or [])
                      if isinstance(v, dict) and (v.get("name") or v.get("message"))]
        names = [str(p["name"]) for p in pulses if p.get("name")]
        web_kind = "ip" if kind in ("IPv4", "IPv6") else kind
        return intel_hit(self.provider, verdict=f"in {count} pulse{'s' if count != 1 else ''}",
                         first_seen=created[0] if created else None,
                         last_seen=modified[-1] if modified else None, tags=tags[:MAX_TAGS],
                         pulses=count, pulse_names=names[:MAX_PULSE_NAMES],
                         malware_families=sorted(families), adversaries=sorted(adversaries),
                         validation=validation,
                         link=f"https://otx.alienvault.com/indicator/{web_kind}/{segment}")

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        address = public_ip(event.artifact["value"])
        if address is None:
            return None
        return await self.lookup("IPv4" if isinstance(address, ipaddress.IPv4Address) else "IPv6", str(address))

    @handler("net.name")
    async def lookup_name(self, event, *args, **kwargs) -> Optional[Hit]:
        name = host_name(event.artifact["value"])
        if name is None:
            return None
        return await self.lookup("hostname" if name.count(".") >= 2 else "domain", name)

    @handler("net.uri")
    async def lookup_uri(self, event, *args, **kwargs) -> Optional[Hit]:
        url = str(event.artifact["value"]).strip()
        if not url:
            return None
        return await self.lookup("url", url)

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    async def lookup_hash(self, event, *args, **kwargs) -> Optional[Hit]:
        digest = str(event.artifact["value"]).strip().lower()
        if len(digest) != HASH_LENGTHS.get(event.name, 0) or not re.fullmatch(r"[0-9a-f]+", digest):
            return None
        return await self.lookup("file", digest)
