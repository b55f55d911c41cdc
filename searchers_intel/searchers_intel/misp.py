"""MISP, at /cts/misp: whether your own MISP instance holds the artifact as an attribute of an
event, and what that event says of it (its threat level, tags, whether it is flagged for IDS).

MISP is self-hosted: ``url`` (the instance's base URL) has no default.  One call per lookup,
the attribute search of its REST API::

    POST <url>/attributes/restSearch
    Authorization: <api key>
    Accept: application/json
    Content-Type: application/json

    {"value": "<artifact>", "type": ["ip-src", "ip-dst", ...], "returnFormat": "json",
     "limit": 50, "page": 1, "includeEventTags": true}

It answers ``{"response": {"Attribute": [...]}}`` (an empty list: no hit), each attribute with
``id``, ``event_id``, ``type``, ``category``, ``value`` (``a|b`` for composite types),
``to_ids``, ``timestamp`` (Unix time), ``first_seen``/``last_seen`` (ISO dates, or null),
``Event`` (``id``, ``info``, ``date``, ``threat_level_id``: 1 High, 2 Medium, 3 Low,
4 Undefined...) and ``Tag`` (``[{"name": ...}]``; with ``includeEventTags``, the event's
too).  A rejected key is a 403 ``{"name", "message", "url"}`` ("Authentication failed...").

One hit per MISP event holding the value (its matching attributes folded together), the
``MAX_HITS`` most recently changed: verdict "malicious" for an IDS indicator (``to_ids``)
of a High or Medium threat event, "suspicious" for one of a Low or Undefined event, and
"listed" for a value MISP holds as context only (not for IDS; ``ids_only = true`` leaves
those out).  MISP's value filter treats ``%`` as a wildcard: only attributes whose value (or
one part of a composite value) is the artifact's count.  ``pymisp`` is not needed.

Configured in ``[misp_searcher]``: ``url``, ``api_key``, ``verify_tls``, ``ids_only``,
``timeout_secs``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Sequence
from urllib.parse import quote

import httpx
from circuits import handler

from rc_cts import Hit, searcher_channel

from .base import IntelSearcher, expect, intel_hit

LOG = logging.getLogger(__name__)

CONFIG = """\
[misp_searcher]
# MISP (/cts/misp): your own instance's attribute search (POST /attributes/restSearch).
# url is required (no default): without it, no lookups are made. A self-hosted instance
# publishes no quota: the searcher declares none (4 calls at once); set rate_limit in
# [custom_threat_service.misp] to spare a small instance.
#url = https://misp.example.org
api_key = $MISP_API_KEY
# false only for a lab instance with a self-signed certificate
verify_tls = true
# true: only attributes flagged for IDS (to_ids) are hits
ids_only = false
timeout_secs = 15
"""

# The MISP attribute types that can hold each artifact type's value.
MISP_TYPES: Dict[str, List[str]] = {
    "net.ip": ["ip-src", "ip-dst", "ip-src|port", "ip-dst|port", "domain|ip"],
    "net.name": ["domain", "hostname", "domain|ip", "hostname|port"],
    "net.uri": ["url", "uri", "link"],
    "hash.md5": ["md5", "filename|md5", "malware-sample"],
    "hash.sha1": ["sha1", "filename|sha1"],
    "hash.sha256": ["sha256", "filename|sha256"],
    "hash.fuzzy": ["ssdeep", "filename|ssdeep"],
    "email.header.sender_address": ["email-src", "email", "email-reply-to"],
    "threat.report.cve": ["vulnerability"],
}
THREAT_LEVELS = {"1": "High", "2": "Medium", "3": "Low", "4": "Undefined"}
SEARCH_LIMIT = 50   # attributes asked for per lookup
MAX_HITS = 5        # events shown per lookup
FALSE = {"false", "0", "no", "off"}


def flag(value: Any, default: bool) -> bool:
    """An app.config yes/no option."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in FALSE


def truthy(value: Any) -> bool:
    """MISP's booleans: true/false, or "1"/"0" and 1/0 from older versions."""
    return value is True or (not isinstance(value, bool) and str(value).strip().lower() in ("1", "true"))


def seen_date(value: Any) -> Optional[str]:
    """A MISP first_seen/last_seen or timestamp as an ISO 8601 UTC date: from an ISO string,
    or digits (Unix seconds, or microseconds: how MISP stores seen dates)."""
    if value is None or isinstance(value, bool) or value == "":
        return None
    text = str(value).strip()
    if text.isdigit():
        number = int(text)
        if number <= 0:
            return None
        if number > 10 ** 12:   # microseconds since the epoch
            number //= 10 ** 6
        try:
            return datetime.fromtimestamp(number, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, OSError, ValueError):
            return None
    if not text[:4].isdigit():
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text     # a date MISP wrote in a form of its own: as it is
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def holds(attribute_value: Any, wanted: str) -> bool:
    """Whether a MISP value (``a|b`` for composite types) is, or has a part that is, ``wanted``."""
    if not isinstance(attribute_value, str):
        return False
    text = attribute_value.strip().casefold()
    return text == wanted or wanted in (part.strip() for part in text.split("|"))


class MISPSearcher(IntelSearcher):
    """Events of your MISP instance that hold the artifact."""

    channel = searcher_channel("misp")
    section = "misp_searcher"
    provider = "MISP"
    base_url = ""                # self-hosted: the section's url, or no lookups
    key_header = "Authorization"
    # Self-hosted: MISP publishes no quota, so none is declared (no rate_limit); a few calls
    # at once keep a small instance responsive.
    max_concurrency = 4
    # Analysts add and retag events all day: an answer is kept a quarter of an hour.
    cache_ttl_secs = 900
    no_hit_ttl_secs = 300

    def __init__(self, opts: Optional[Dict[str, Any]] = None):
        super().__init__(opts)
        options = (opts or {}).get(self.section) or {}
        self.verify_tls = flag(options.get("verify_tls"), True)
        self.ids_only = flag(options.get("ids_only"), False)
        if not self.url:
            LOG.warning("[%s] has no url: MISP lookups are skipped (no hits) until it has one "
                        "(the base URL of your MISP instance)", self.section)
        elif not self.verify_tls:
            LOG.warning("[%s] verify_tls = false: MISP's TLS certificate is not checked", self.section)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers(),
                                             verify=self.verify_tls)
        return self._client

    @handler(*MISP_TYPES)
    async def lookup(self, event, *args, **kwargs) -> Optional[List[Hit]]:
        value = str(event.artifact["value"]).strip()
        if not value or not self.configured:
            return None
        attributes = await self.search(value, MISP_TYPES[event.name])
        wanted = value.casefold()
        by_event: Dict[str, List[Dict[str, Any]]] = {}
        for attribute in attributes:
            expect(attribute, dict, "attribute", self.provider)
            if not holds(attribute.get("value"), wanted):
                continue  # a wildcard match, not this value
            if self.ids_only and not truthy(attribute.get("to_ids")):
                continue
            by_event.setdefault(str(attribute.get("event_id") or ""), []).append(attribute)
        if not by_event:
            return None
        newest = sorted(by_event.items(), key=lambda item: max(_int(a.get("timestamp")) for a in item[1]),
                        reverse=True)
        return [self.event_hit(event_id, found, len(by_event)) for event_id, found in newest[:MAX_HITS]]

    async def search(self, value: str, types: Sequence[str]) -> List[Any]:
        """The attributes restSearch finds for ``value`` among ``types``."""
        body: Dict[str, Any] = {"value": value, "type": list(types), "returnFormat": "json",
                                "limit": SEARCH_LIMIT, "page": 1, "includeEventTags": True}
        if self.ids_only:
            body["to_ids"] = True
        # not_found=(): a 404 is a wrong url (no such page), not an unknown value
        answer = await self.request("POST", "/attributes/restSearch", not_found=(), json=body,
                                    headers={"Content-Type": "application/json"})
        response = expect(answer, dict, "answer", self.provider).get("response")
        if isinstance(response, list) and not response:
            return []   # {"response": []}: what some versions answer when nothing matched
        response = expect(response, dict, "response object", self.provider)
        return expect(response.get("Attribute") or [], list, "Attribute list", self.provider)

    def event_hit(self, event_id: str, attributes: List[Dict[str, Any]], events: int) -> Hit:
        """One event's matching attributes, as one hit."""
        info: Dict[str, Any] = next((a["Event"] for a in attributes if isinstance(a.get("Event"), dict)), {})
        level = THREAT_LEVELS.get(str(info.get("threat_level_id") or ""))
        ids = any(truthy(a.get("to_ids")) for a in attributes)
        if ids:
            verdict = "malicious" if level in ("High", "Medium") else "suspicious"
        else:
            verdict = "listed"
        firsts = [d for d in (seen_date(a.get("first_seen")) for a in attributes) if d]
        lasts = [d for d in (seen_date(a.get("last_seen")) or seen_date(a.get("timestamp"))
                             for a in attributes) if d]
        tags: List[str] = []
        for attribute in attributes:
            for tag in expect(attribute.get("Tag") or [], list, "Tag list", self.provider):
                if isinstance(tag, dict) and tag.get("name"):
                    tags.append(str(tag["name"]))
        return intel_hit(
            self.provider, verdict=verdict,
            first_seen=min(firsts) if firsts else info.get("date"),
            last_seen=max(lasts) if lasts else None,
            tags=tags,
            event=_text(info.get("info")),
            threat_level=level,
            to_ids="yes" if ids else "no",
            category=sorted({str(a["category"]) for a in attributes if a.get("category")}),
            attribute_type=sorted({str(a["type"]) for a in attributes if a.get("type")}),
            events=events if events > 1 else None,
            link=f"{self.url}/events/view/{quote(event_id, safe='')}" if event_id else None,
        )


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _text(value: Any, limit: int = 200) -> Optional[str]:
    if value is None:
        return None
    text = str(value).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"
