"""abuse.ch URLhaus, at /cts/urlhaus: URLs that distribute malware, and the hosts serving them.

Both lookups are ``POST`` form requests with the ``Auth-Key`` header (see ``abusech``):

- a URL (net.uri): ``POST https://urlhaus-api.abuse.ch/v1/url/`` with ``url=<url>`` answers
  ``{"query_status": "ok", "id", "urlhaus_reference", "url", "url_status"
  ("online"|"offline"|"unknown"), "host", "date_added", "last_online", "threat"
  ("malware_download"...), "blacklists": {"spamhaus_dbl", "surbl"}, "reporter", "larted",
  "takedown_time_seconds", "tags", "payloads": [{"firstseen", "file_type", "response_sha256",
  "signature", "virustotal"...}]}``;
- a host (net.name, net.ip): ``POST /v1/host/`` with ``host=<domain or IP>`` answers
  ``{"query_status": "ok", "urlhaus_reference", "host", "firstseen", "url_count",
  "blacklists", "urls": [{"id", "urlhaus_reference", "url", "url_status", "date_added",
  "threat", "reporter", "larted", "takedown_time_seconds", "tags"}...]}``.

``query_status`` is ``no_results`` for what URLhaus does not know (no hit), ``invalid_url`` /
``invalid_host`` for a value it will not take (no hit), ``http_post_expected`` for a request
that was not a POST.  A URL hit's verdict is its threat, first and last seen its
``date_added`` and ``last_online``; a host's are its threats, ``firstseen`` and its newest URL's
``date_added``.  Configured in ``[urlhaus_searcher]``: ``api_key``, ``url``, ``timeout_secs``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from circuits import handler

from rc_cts import Hit, searcher_channel

from .abusech import AbuseChSearcher, artifact_value, count
from .base import expect, intel_hit

CONFIG = """\
[urlhaus_searcher]
# abuse.ch URLhaus (/cts/urlhaus): malware URLs and the hosts serving them. It needs a free
# abuse.ch Auth-Key (https://auth.abuse.ch/; one key serves URLhaus, ThreatFox, MalwareBazaar).
# Its quota and cache are declared on the searcher (1/second; hits kept 6 hours); override them
# in [custom_threat_service.urlhaus].
api_key = $ABUSE_CH_AUTH_KEY
#url = https://urlhaus-api.abuse.ch
timeout_secs = 15
"""


def listed_blacklists(blacklists: Any) -> List[str]:
    """``{"spamhaus_dbl": "abused_legit_malware", "surbl": "not listed"}`` -> the lists that
    have it, ``["spamhaus_dbl: abused_legit_malware"]``."""
    if not isinstance(blacklists, dict):
        return []
    return [f"{name}: {state}" for name, state in sorted(blacklists.items())
            if isinstance(state, str) and state and state != "not listed"]


def _tags(value: Any, provider: str) -> List[str]:
    return [str(t) for t in expect(value or [], list, "tags list", provider) if t]


class URLhausSearcher(AbuseChSearcher):
    """Malware URLs (net.uri) and the hosts serving them (net.name, net.ip), from URLhaus."""

    channel = searcher_channel("urlhaus")
    section = "urlhaus_searcher"
    provider = "URLhaus"
    base_url = "https://urlhaus-api.abuse.ch"
    not_found_statuses = frozenset({"no_results"})
    invalid_statuses = frozenset({"invalid_url", "invalid_host"})
    # abuse.ch publishes no number, only fair use of its free API: one call a second (the Auth-Key
    # is shared with ThreatFox and MalwareBazaar), two at a time.
    rate_limit = "1/second"
    max_concurrency = 2
    cache_ttl_secs = 21600       # a URL goes on- and offline: hits kept 6 hours
    no_hit_ttl_secs = 3600       # new URLs are added all day

    @handler("net.uri")
    async def lookup_url(self, event, *args, **kwargs) -> Optional[Hit]:
        url = artifact_value(event)
        if not url or not self.configured:
            return None
        answer = await self.query("/v1/url/", "net.uri", data={"url": url})
        return None if answer is None else self.url_hit(answer)

    @handler("net.name")
    async def lookup_name(self, event, *args, **kwargs) -> Optional[Hit]:
        return await self.lookup_host(artifact_value(event), "net.name")

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        return await self.lookup_host(artifact_value(event), "net.ip")

    async def lookup_host(self, host: str, artifact_type: str) -> Optional[Hit]:
        if not host or not self.configured:
            return None
        answer = await self.query("/v1/host/", artifact_type, data={"host": host})
        return None if answer is None else self.host_hit(answer)

    def url_hit(self, answer: Dict[str, Any]) -> Hit:
        payloads = [p for p in expect(answer.get("payloads") or [], list, "payloads list", self.provider)
                    if isinstance(p, dict)]
        signatures = sorted({str(p["signature"]) for p in payloads if p.get("signature")})
        return intel_hit(self.provider, verdict=answer.get("threat") or "malware URL",
                         first_seen=answer.get("date_added"), last_seen=answer.get("last_online"),
                         tags=_tags(answer.get("tags"), self.provider),
                         status=answer.get("url_status"), malware=signatures,
                         payloads=len(payloads) or None,
                         blacklists=listed_blacklists(answer.get("blacklists")),
                         link=answer.get("urlhaus_reference"))

    def host_hit(self, answer: Dict[str, Any]) -> Optional[Hit]:
        urls = [u for u in expect(answer.get("urls") or [], list, "urls list", self.provider)
                if isinstance(u, dict)]
        if not urls:
            return None  # known, with no malware URL on it
        tags: List[str] = []
        for entry in urls:
            tags.extend(_tags(entry.get("tags"), self.provider))
        added = sorted(str(u["date_added"]) for u in urls if u.get("date_added"))
        online = sum(1 for u in urls if u.get("url_status") == "online")
        threats = sorted({str(u["threat"]) for u in urls if u.get("threat")})
        return intel_hit(self.provider, verdict=", ".join(threats) or "malware host",
                         first_seen=answer.get("firstseen"), last_seen=added[-1] if added else None,
                         tags=tags, malware_urls=count(answer.get("url_count")) or len(urls),
                         online_urls=online, blacklists=listed_blacklists(answer.get("blacklists")),
                         link=answer.get("urlhaus_reference"))
