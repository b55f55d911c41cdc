"""Shodan InternetDB, at /cts/internetdb: what Shodan last saw on an IP address (open ports,
known vulnerabilities, tags, host names), free and without a key.

``GET https://internetdb.shodan.io/<ip>`` answers ``{"ip", "ports", "vulns", "tags",
"hostnames", "cpes"}``, or 404 ``{"detail": "No information available"}`` for an address it
has nothing on (no hit).  Configured in ``[internetdb_searcher]``: ``url``, ``timeout_secs``.
"""
from __future__ import annotations

from urllib.parse import quote

from circuits import handler

from rc_cts import searcher_channel

from .base import IntelSearcher, expect, intel_hit

CONFIG = """\
[internetdb_searcher]
# Shodan InternetDB (/cts/internetdb): no key needed. Its quota and cache are declared on the
# searcher (1/second; answers kept a day); override them in [custom_threat_service.internetdb].
#url = https://internetdb.shodan.io
timeout_secs = 15
"""


class InternetDBSearcher(IntelSearcher):
    """Open ports, vulnerabilities and tags of an IP address, from Shodan InternetDB."""

    channel = searcher_channel("internetdb")
    section = "internetdb_searcher"
    provider = "Shodan InternetDB"
    base_url = "https://internetdb.shodan.io"
    needs_key = False
    # No published quota: it throttles heavy use. One call a second, as Shodan's own API allows.
    rate_limit = "1/second"
    max_concurrency = 2
    cache_ttl_secs = 86400       # its data changes about weekly
    no_hit_ttl_secs = 21600

    @handler("net.ip")
    async def lookup_ip(self, event, *args, **kwargs):
        ip = str(event.artifact["value"]).strip()
        data = await self.request("GET", "/" + quote(ip, safe=""))
        if data is None:
            return None
        data = expect(data, dict, "host record", self.provider)
        ports = [p for p in expect(data.get("ports") or [], list, "ports list", self.provider)]
        vulns = expect(data.get("vulns") or [], list, "vulns list", self.provider)
        tags = expect(data.get("tags") or [], list, "tags list", self.provider)
        if not ports and not vulns and not tags:
            return None  # seen, with nothing open: clean
        return intel_hit(self.provider, verdict="known vulnerabilities" if vulns else None,
                         tags=tags, open_ports=sorted(ports), vulnerabilities=sorted(vulns)[:50],
                         hostnames=(data.get("hostnames") or [])[:10],
                         link=f"https://www.shodan.io/host/{quote(ip, safe='')}")
