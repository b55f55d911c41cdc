"""Searchers that call a provider API (rc_cts.fakeapi) with python-requests, as real ones do:
each reads ``url`` and ``api_key`` from its own app.config section, sends the key in a header,
and hands the response to ``check_rate_limit`` (429s and spent quotas defer the lookup)."""
from __future__ import annotations

from typing import Any, Dict, Optional

import requests
from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, check_rate_limit, searcher_channel


class ApiSearcher(BaseComponent):
    """GET <url><path>?value=<artifact value>; 200 with {"verdict": ...} is a hit, {} none."""
    section = "api"
    path = "/check"

    def __init__(self, opts: Optional[Dict[str, Any]] = None):
        super().__init__()
        options = (opts or {}).get(self.section, {})
        self.url = options.get("url", "")
        self.api_key = options.get("api_key", "")

    @handler("net.ip", "net.name")
    def lookup(self, event, *args, **kwargs):
        response = check_rate_limit(requests.get(self.url + self.path, params={"value": event.artifact["value"]},
                                                 headers={"Key": self.api_key}, timeout=10))
        response.raise_for_status()  # a 5xx is a failure: the breaker counts it
        verdict = response.json().get("verdict")
        if verdict is None:
            return None
        return Hit(StringProp(name="Verdict", value=str(verdict)), StringProp(name="From", value=type(self).__name__))


class QuotaSearcher(ApiSearcher):
    """/quota: its windows come from app.config ([custom_threat_service.quota] rate_limit)."""
    channel = searcher_channel("quota")
    section = "quota_api"
    path = "/quota"


class LimitedSearcher(ApiSearcher):
    """/limited: the provider's 429 and Retry-After decide."""
    channel = searcher_channel("limited")
    section = "limited_api"
    path = "/limited"


class FlakySearcher(ApiSearcher):
    """/breaker, with SteadySearcher: its API fails until told otherwise."""
    channel = searcher_channel("breaker")
    section = "flaky_api"
    path = "/flaky"


class SteadySearcher(BaseComponent):
    """/breaker: always a hit, from memory."""
    channel = searcher_channel("breaker")

    @handler("net.ip", "net.name")
    def lookup(self, event, *args, **kwargs):
        return Hit(StringProp(name="From", value="steady"))


class ShortLivedSearcher(ApiSearcher):
    """/cached: answers worth 1 s."""
    channel = searcher_channel("cached")
    section = "short_api"
    path = "/short"
    cache_ttl_secs = 1


class LongLivedSearcher(ApiSearcher):
    """/cached: answers worth a minute."""
    channel = searcher_channel("cached")
    section = "long_api"
    path = "/long"
    cache_ttl_secs = 60


class StaleSearcher(ApiSearcher):
    """/swr: fresh for 1 s, then served stale for up to a minute while refreshed."""
    channel = searcher_channel("swr")
    section = "stale_api"
    path = "/stale"
    cache_ttl_secs = 1
    no_hit_ttl_secs = 1
    stale_secs = 60


ALL = (QuotaSearcher, LimitedSearcher, FlakySearcher, SteadySearcher, ShortLivedSearcher,
       LongLivedSearcher, StaleSearcher)


def every_searcher(opts: Dict[str, Any]):
    return [cls(opts) if issubclass(cls, ApiSearcher) else cls() for cls in ALL]
