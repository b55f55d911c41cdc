"""What every searcher of this package shares: its app.config section, one httpx client on
rc-cts's asyncio loop, the checks every answer goes through, and the shape of a hit.

A searcher here carries no rate-limit, retry or cache code: its provider's free-tier quota,
breaker thresholds and cache TTLs are class attributes that rc-cts enforces
(``rate_limit``, ``cache_ttl_secs``...), and an operator overrides them in
``[custom_threat_service.<service>]``.  What is left is the provider's own protocol.
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, Iterable, Optional, Sequence

import httpx
from circuits import BaseComponent

from rc_cts import Hit, LookupFailed, NumberProp, StringProp, UriProp, check_rate_limit

LOG = logging.getLogger(__name__)
# A provider refusing the value it is asked about (not an IP, a malformed hash...): the artifact's
# fault, not the provider's, so no failure for the breaker to count (five odd artifacts in an
# attacker's e-mail would close the provider to every lookup).
REFUSED = (400, 422)


class IntelSearcher(BaseComponent):
    """One provider's web API.  Subclasses set ``channel``, ``section``, ``provider`` (its name in
    logs and hits), ``base_url``, and ``key_header`` (None: the key goes elsewhere, or none is
    needed), then write one ``async`` handler per artifact type with ``request``."""

    section = ""                 # its app.config section: api_key, url, timeout_secs
    provider = ""                # as analysts know it: "URLhaus", "VirusTotal"...
    base_url = ""                # the provider's public API (the section's ``url`` overrides it)
    key_header: Optional[str] = None
    needs_key = True
    call_timeout_secs = 30       # rc-cts gives a call up after this; httpx's timeout comes first

    def __init__(self, opts: Optional[Dict[str, Any]] = None):
        super().__init__()
        options = (opts or {}).get(self.section) or {}
        self.url = (options.get("url") or self.base_url).rstrip("/")
        self.api_key = options.get("api_key") or ""
        self.timeout = float(options.get("timeout_secs") or 15)
        self._client: Optional[httpx.AsyncClient] = None  # made on rc-cts's loop, at the first call
        if self.needs_key and not self.api_key:
            LOG.warning("[%s] has no api_key: %s lookups are skipped (no hits) until it has one",
                        self.section, self.provider)

    @property
    def configured(self) -> bool:
        """Whether lookups can be made (a searcher without its key answers no hits)."""
        return bool(self.url) and (bool(self.api_key) or not self.needs_key)

    def headers(self) -> Dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "rc-cts-searchers-intel"}
        if self.key_header and self.api_key:
            headers[self.key_header] = self.api_key
        return headers

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, headers=self.headers())
        return self._client

    async def aclose(self) -> None:
        """rc-cts calls it when the service stops: the client's connections are closed."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def request(self, method: str, path: str, *, not_found: Sequence[int] = (404,),
                      **kwargs: Any) -> Any:
        """The provider's JSON answer, or None for a status in ``not_found`` (unknown to it).
        A 429 or a spent quota defers the lookup (``check_rate_limit``); a rejected key, an
        error status, a network failure or an answer that is not JSON fails the call with a
        ``LookupFailed`` that says which.  Without its key (or url) it makes no call: None."""
        if not self.configured:
            return None
        try:
            async with self.client().stream(method, self.url + path, **kwargs) as response:
                check_rate_limit(response)
                if response.status_code in (401, 403):
                    raise LookupFailed(f"{self.provider} rejected the API key (HTTP {response.status_code}): "
                                       f"check api_key in [{self.section}]")
                if response.status_code in not_found:
                    return None
                if response.status_code in REFUSED:  # the value, not the provider: no hit, no failure
                    LOG.info("%s refused the value it was asked about (HTTP %d): no hit", self.provider,
                             response.status_code)
                    return None
                if response.status_code >= 400:
                    raise LookupFailed(f"{self.provider} answered HTTP {response.status_code}")
                body = await read_bounded(response, self.provider)
        except httpx.TimeoutException:
            raise LookupFailed(f"{self.provider} did not answer within {self.timeout:g}s") from None
        except httpx.HTTPError as exc:
            raise LookupFailed(f"{self.provider} is unreachable: {type(exc).__name__}") from None
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise LookupFailed(f"{self.provider} answered something that is not JSON "
                               f"(HTTP {response.status_code}, {len(body)} bytes)") from None


MAX_ANSWER_BYTES = 8 * 1024 * 1024  # no provider's JSON answer for one artifact comes near this


async def read_bounded(response: httpx.Response, provider: str) -> bytes:
    """The body, or LookupFailed as soon as it passes MAX_ANSWER_BYTES (never read whole)."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise LookupFailed(f"{provider} answered more than {MAX_ANSWER_BYTES} bytes: not read")
    return bytes(body)


def expect(value: Any, kind: type, what: str, provider: str) -> Any:
    """``value`` if it is a ``kind``; else the answer is malformed and the call fails."""
    if not isinstance(value, kind):
        raise LookupFailed(f"{provider} answered a malformed {what}: {type(value).__name__}, "
                           f"not {kind.__name__}")
    return value


def intel_hit(provider: str, verdict: Optional[str] = None, score: Optional[float] = None,
              first_seen: Optional[str] = None, last_seen: Optional[str] = None,
              tags: Iterable[str] = (), link: Optional[str] = None, **details: Any) -> Hit:
    """A hit with the props an analyst looks for, in the same order and names for every
    provider; props without a value are left out."""
    props: list = [StringProp(name="Source", value=provider)]
    if verdict:
        props.append(StringProp(name="Verdict", value=str(verdict)))
    if score is not None:
        props.append(NumberProp(name="Score", value=score))
    if first_seen:
        props.append(StringProp(name="First seen", value=str(first_seen)))
    if last_seen:
        props.append(StringProp(name="Last seen", value=str(last_seen)))
    tag_list = [str(t) for t in tags if t]
    if tag_list:
        props.append(StringProp(name="Tags", value=", ".join(sorted(set(tag_list)))))
    for name, value in details.items():
        if value not in (None, "", [], ()):
            text = ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else value
            props.append(NumberProp(name=name.replace("_", " ").capitalize(), value=text)
                         if isinstance(text, (int, float)) and not isinstance(text, bool)
                         else StringProp(name=name.replace("_", " ").capitalize(), value=str(text)))
    if link:
        props.append(UriProp(name="Report", value=link))
    return Hit(*props)
