"""GreyNoise Community, at /cts/greynoise: whether an IPv4 address is Internet background noise
(a mass scanner GreyNoise's sensors saw) or a known business service (RIOT), and GreyNoise's
classification of it.

``GET https://api.greynoise.io/v3/community/<ip>``, with the header ``key: <api key>`` when one
is configured (the Community API also answers without a key, at a lower quota), answers 200
``{"ip", "noise", "riot", "classification" ("benign" | "malicious" | "unknown"), "name",
"link", "last_seen", "message"}`` for an address in the noise or RIOT data set: a hit, with the
classification as its verdict.  404 ``{"ip", "noise": false, "riot": false, "message": "IP not
observed scanning the internet or contained in RIOT data set."}`` is no hit; so is 400
``{"message": "Request is not a valid routable IPv4 address"}``.  401 for a wrong key; 429
``{"plan", "rate-limit", "plan_url", "message"}`` once the quota is spent.  Only public IPv4
addresses are looked up (the Community API has nothing else).

Configured in ``[greynoise_searcher]``: ``api_key`` (optional), ``url``, ``timeout_secs``.
"""
from __future__ import annotations

import ipaddress
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from circuits import handler

from rc_cts import Hit, searcher_channel

from .artifacts import public_ip
from .base import IntelSearcher, expect, intel_hit

CONFIG = """\
[greynoise_searcher]
# GreyNoise Community API (/cts/greynoise): a free community account's API key. The key is
# optional: without it (delete the api_key line) the API still answers, at its keyless quota.
# Its quota and cache are declared on the searcher (50 lookups a week with a key, 10 a day
# without; answers kept a day); override them in [custom_threat_service.greynoise].
api_key = $GREYNOISE_API_KEY
#url = https://api.greynoise.io
timeout_secs = 15
"""

KEYLESS_RATE_LIMIT = "10/day"


class GreyNoiseSearcher(IntelSearcher):
    """Scanner ("noise") and business-service (RIOT) context of an IPv4 address, from GreyNoise."""

    channel = searcher_channel("greynoise")
    section = "greynoise_searcher"
    provider = "GreyNoise"
    base_url = "https://api.greynoise.io"
    key_header = "key"
    needs_key = False
    # Documented Community plan: 50 searches a week with a free account's key (shared with the
    # web Visualizer); without a key about 10 lookups a day (set in __init__).
    rate_limit = "50/7days"
    max_concurrency = 2
    cache_ttl_secs = 86400       # its data set changes daily, and the quota is small
    no_hit_ttl_secs = 86400

    def __init__(self, opts: Optional[Dict[str, Any]] = None):
        super().__init__(opts)
        if not self.api_key:
            self.rate_limit = KEYLESS_RATE_LIMIT

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs) -> Optional[Hit]:
        address = public_ip(event.artifact["value"])
        if not isinstance(address, ipaddress.IPv4Address):
            return None
        answer = await self.request("GET", "/v3/community/" + quote(str(address), safe=""),
                                    not_found=(404, 400))  # 400: not an address it routes
        if answer is None:
            return None
        data = expect(answer, dict, "community record", self.provider)
        noise, riot = data.get("noise") is True, data.get("riot") is True
        if not noise and not riot:
            return None
        classification = expect(data.get("classification") or "unknown", str, "classification", self.provider)
        tags: List[str] = (["internet scanner"] if noise else []) + (["business service (RIOT)"] if riot else [])
        link = data.get("link")
        if not isinstance(link, str) or not link.startswith("https://"):
            link = f"https://viz.greynoise.io/ip/{address}"
        return intel_hit(self.provider, verdict=classification, last_seen=data.get("last_seen"),
                         tags=tags, name=data.get("name"), link=link)
