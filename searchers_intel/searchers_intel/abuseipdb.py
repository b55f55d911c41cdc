"""AbuseIPDB, at /cts/abuseipdb: how much abuse an IP address has been reported for, by the
AbuseIPDB community, with its confidence score.

``GET https://api.abuseipdb.com/api/v2/check?ipAddress=<ip>&maxAgeInDays=90`` with the headers
``Key: <api key>`` and ``Accept: application/json`` answers ``{"data": {"ipAddress", "isPublic",
"ipVersion", "isWhitelisted", "abuseConfidenceScore" (0-100), "countryCode", "usageType", "isp",
"domain", "hostnames", "isTor", "totalReports", "numDistinctUsers", "lastReportedAt"}}``.  An
address with a score or reports is a hit; one with neither (score 0, no reports) is clean: no
hit.  Errors answer ``{"errors": [{"detail", "status"}]}``: 401 for a missing or wrong key,
422 for a value that is not an address, 429 once the day's quota is spent (with
``Retry-After`` and ``X-RateLimit-Limit/Remaining/Reset``, the reset an epoch time).
Addresses that are not public (private, loopback, documentation...) are not looked up.

Configured in ``[abuseipdb_searcher]``: ``api_key``, ``url``, ``timeout_secs``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from circuits import handler

from rc_cts import Hit, LookupFailed, searcher_channel

from .artifacts import public_ip
from .base import IntelSearcher, expect, intel_hit

CONFIG = """\
[abuseipdb_searcher]
# AbuseIPDB (/cts/abuseipdb): an APIv2 key, from a free account's dashboard (not an APIv1 key).
# Its quota and cache are declared on the searcher (1000 checks a day; hits kept 4 hours);
# override them in [custom_threat_service.abuseipdb].
api_key = $ABUSEIPDB_API_KEY
#url = https://api.abuseipdb.com/api/v2
timeout_secs = 15
"""

MAX_AGE_DAYS = 90            # the reports counted: those of the last 90 days

# Our reading of the confidence score (AbuseIPDB gives the number, not a verdict).
MALICIOUS_FROM = 75
SUSPICIOUS_FROM = 25


def verdict_for(score: float, whitelisted: bool) -> str:
    if whitelisted:
        return "whitelisted"
    if score >= MALICIOUS_FROM:
        return "malicious"
    if score >= SUSPICIOUS_FROM:
        return "suspicious"
    return "reported"


class AbuseIPDBSearcher(IntelSearcher):
    """Abuse reports and confidence score of an IP address, from AbuseIPDB."""

    channel = searcher_channel("abuseipdb")
    section = "abuseipdb_searcher"
    provider = "AbuseIPDB"
    base_url = "https://api.abuseipdb.com/api/v2"
    key_header = "Key"
    # Documented free ("Standard"/Individual) plan: 1,000 check requests a day; no shorter window published.
    rate_limit = "1000/day"
    max_concurrency = 4          # no concurrency limit published: a few calls at once
    cache_ttl_secs = 14400       # reports accumulate through the day
    no_hit_ttl_secs = 3600

    def number(self, value: Any, what: str) -> float:
        """A count or score of the answer (absent: 0); anything else is malformed."""
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise LookupFailed(f"{self.provider} answered a malformed {what}: {type(value).__name__}, not a number")
        return value

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        address = public_ip(event.artifact["value"])
        if address is None or not self.configured:
            return None
        answer = await self.request("GET", "/check",
                                    params={"ipAddress": str(address), "maxAgeInDays": str(MAX_AGE_DAYS)})
        if answer is None:
            return None
        answer = expect(answer, dict, "answer", self.provider)
        data: Dict[str, Any] = expect(answer.get("data"), dict, "check record", self.provider)
        score = self.number(data.get("abuseConfidenceScore"), "abuseConfidenceScore")
        reports = self.number(data.get("totalReports"), "totalReports")
        if not score and not reports:
            return None  # clean: nobody reported it in the last 90 days
        whitelisted = data.get("isWhitelisted") is True
        tags: List[str] = ["tor exit node"] if data.get("isTor") is True else []
        if whitelisted:
            tags.append("whitelisted")
        return intel_hit(self.provider, verdict=verdict_for(score, whitelisted), score=score,
                         last_seen=data.get("lastReportedAt"), tags=tags,
                         reports=reports, distinct_reporters=data.get("numDistinctUsers"),
                         country=data.get("countryCode"), usage_type=data.get("usageType"),
                         isp=data.get("isp"), domain=data.get("domain"),
                         link=f"https://www.abuseipdb.com/check/{address}")
