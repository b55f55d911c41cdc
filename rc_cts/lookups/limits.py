"""What a searcher declares about itself, in one place: its share of the service (bulkhead),
its quota, its circuit breaker and its result cache.

Each is a class attribute a searcher may set (``rate_limit = "4/minute, 500/day"``,
``cache_ttl_secs = 86400``...), and a ``[custom_threat_service.<service>]`` section of
app.config may override for one service.  Unset, the service's defaults apply.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List

from .quota import parse_rate_limit


@dataclass(frozen=True)
class SearcherLimits:
    """One searcher's policies.

    ``max_abandoned`` bounds the threads left running by calls that passed their timeout
    (a thread cannot be killed): while that many are still stuck, new calls wait in the queue,
    so a hung API costs its own searcher at most ``max_concurrency + max_abandoned`` threads.

    The breaker opens after ``breaker_failures`` failed or timed-out calls in a row, or when
    at least ``breaker_failure_ratio`` of the last ``breaker_window`` calls failed (0 turns
    either trigger off); it lets one probe call through after ``breaker_cooldown_secs``,
    doubling on each trip in a row up to ``breaker_max_cooldown_secs``.

    An answer with hits is reused for ``cache_ttl_secs``, one with none for
    ``no_hit_ttl_secs`` (never longer than ``cache_ttl_secs``); after that it may still be
    served for ``stale_secs`` while it is refreshed in the background (0: never served
    stale).  0 for a TTL: never cached.
    """
    max_concurrency: int = 32
    max_queue: int = 1000
    call_timeout_secs: float = 60.0
    max_abandoned: int = 32
    rate_limit: str = ""   # "4/minute, 1000/day": every window holds; calls past one wait
    breaker_failures: int = 5
    breaker_failure_ratio: float = 0.5
    breaker_window: int = 20
    breaker_cooldown_secs: float = 30.0
    breaker_max_cooldown_secs: float = 600.0
    cache_ttl_secs: float = 600.0
    no_hit_ttl_secs: float = 60.0
    stale_secs: float = 0.0

    def ttl_for(self, hits: bool) -> float:
        """How long an answer with hits, or with none, is fresh."""
        return self.cache_ttl_secs if hits else min(self.no_hit_ttl_secs, self.cache_ttl_secs)

    def problems(self) -> List[str]:
        """What is wrong with these values, one sentence each (empty: usable)."""
        found = [problem for name in LIMIT_KINDS for problem in [value_problem(name, getattr(self, name))]
                 if problem]
        if self.breaker_max_cooldown_secs < self.breaker_cooldown_secs:
            found.append("breaker_max_cooldown_secs must not be less than breaker_cooldown_secs")
        return found

    def with_values(self, values: Dict[str, Any]) -> "SearcherLimits":
        """A copy with ``values`` converted to each limit's type; ValueError/TypeError if bad."""
        unknown = set(values) - set(LIMIT_KINDS)
        if unknown:
            raise ValueError(f"unknown limits {', '.join(sorted(unknown))}")
        return replace(self, **{name: LIMIT_KINDS[name](value) for name, value in values.items()})


# The limits a searcher class may declare as attributes, and app.config may set per service.
LIMIT_KINDS: Dict[str, type] = {f.name: type(f.default) for f in fields(SearcherLimits)}
MAY_BE_ZERO = frozenset({"breaker_failures", "breaker_failure_ratio", "cache_ttl_secs",
                         "no_hit_ttl_secs", "stale_secs"})


def value_problem(name: str, value: Any) -> str:
    """Why ``value`` cannot be limit ``name`` ("" if it can), for messages that name it."""
    if name == "rate_limit":
        try:
            parse_rate_limit(value)
        except ValueError as exc:
            return str(exc)
        return ""
    if name == "breaker_failure_ratio" and not 0 <= value <= 1:
        return f"{name} must be between 0 and 1 (0: off)"
    if name in MAY_BE_ZERO:
        return "" if value >= 0 else f"{name} must not be negative (0: off)"
    return "" if value > 0 else f"{name} must be greater than 0"
