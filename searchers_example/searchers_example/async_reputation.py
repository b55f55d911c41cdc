"""The reputation web API searcher written ``async``, at /cts/reputation_async: the model
for an I/O-bound searcher.

Its handlers are ``async def``, so rc-cts awaits them on its one asyncio loop: hundreds
of calls can wait on the API at once without a thread each.  It carries no rate-limit,
retry loop or thread pool of its own: the API's quota is declared on the class
(``rate_limit``, ``max_concurrency``), and rc-cts holds the calls that would pass it.
An operator overrides them in ``[custom_threat_service.reputation_async]``.

Configured in ``[async_reputation_searcher]``: ``url``, ``api_key``, ``timeout_secs``.
"""
from __future__ import annotations

import logging
from typing import Optional
from urllib.parse import quote

import httpx
from circuits import BaseComponent, handler

from rc_cts import ThreatLookupIncompleteException, searcher_channel

from .reputation import RETRYABLE, reputation_hit

LOG = logging.getLogger(__name__)
SECTION = "async_reputation_searcher"


class AsyncReputationSearcher(BaseComponent):
    """Looks up IPs, host names, URLs and hashes in a reputation web API, with httpx."""

    channel = searcher_channel("reputation_async")
    # The API's free tier, as its documentation states it; rc-cts enforces both windows.
    rate_limit = "4/second, 1000/day"
    max_concurrency = 64
    call_timeout_secs = 30

    def __init__(self, opts=None):
        super().__init__()
        options = (opts or {}).get(SECTION, {})
        self.url = options.get("url", "").rstrip("/")
        self.api_key = options.get("api_key", "")
        self.timeout = float(options.get("timeout_secs", 10))
        self._client: Optional[httpx.AsyncClient] = None  # made on rc-cts's loop, at the first call
        if not self.url:
            LOG.warning("[%s] has no 'url': /cts/reputation_async answers no hits until it has one", SECTION)

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers={
                "X-API-Key": self.api_key, "Accept": "application/json"})
        return self._client

    async def query(self, kind: str, value: str) -> Optional[dict]:
        """The API's answer, or None for no data; ThreatLookupIncompleteException when it is
        busy or unreachable (rc-cts asks again later), RuntimeError for a rejected key."""
        url = f"{self.url}/{kind}/{quote(str(value), safe='')}"
        try:
            response = await self.client().get(url)
        except httpx.TransportError as exc:
            raise ThreatLookupIncompleteException(f"reputation API: {type(exc).__name__}") from None
        if response.status_code == 200:
            return response.json()
        if response.status_code == 404:
            return None
        if response.status_code in (401, 403):
            raise RuntimeError(f"reputation API rejected the API key ({response.status_code})")
        if response.status_code in RETRYABLE:
            raise ThreatLookupIncompleteException(f"reputation API answered {response.status_code}")
        raise RuntimeError(f"reputation API answered {response.status_code}")

    async def _lookup(self, kind: str, event):
        if not self.url:
            return None
        return reputation_hit(await self.query(kind, event.artifact["value"]))

    @handler("net.ip")
    async def _lookup_net_ip(self, event, *args, **kwargs):
        return await self._lookup("ip", event)

    @handler("net.name")
    async def _lookup_net_name(self, event, *args, **kwargs):
        return await self._lookup("domain", event)

    @handler("net.uri")
    async def _lookup_net_uri(self, event, *args, **kwargs):
        return await self._lookup("url", event)

    @handler("hash.md5", "hash.sha1", "hash.sha256")
    async def _lookup_hash(self, event, *args, **kwargs):
        return await self._lookup("hash", event)
