"""A provider's own word on its quota: 429, ``Retry-After``, ``X-RateLimit-*`` headers.

Our windows count the calls we make; the provider counts what it sees (other clients on
the same key, a plan smaller than declared).  When it says stop, it is right: the searcher
is paused until the time it gives, and its lookups wait, pending, instead of failing.

A searcher either raises ``RateLimited`` itself, or hands each response to
``check_rate_limit``, which raises it for a 429 and, for a response that spent the last
call (``X-RateLimit-Remaining: 0``), lets the answer through and pauses the calls after it.
"""
from __future__ import annotations

import contextvars
import email.utils
import math
import time
from typing import Any, Mapping, Optional

DEFAULT_PAUSE_SECS = 60.0          # a 429 that gives no time
MIN_PAUSE_SECS = 1.0               # a 429 saying "now" (Retry-After: 0, a reset just past: clock skew)
MAX_PAUSE_SECS = 31 * 86400.0      # a monthly quota's reset, at most: beyond that, a garbled header
EPOCH_AFTER = 10 ** 9              # an X-RateLimit-Reset above this is a Unix time, not seconds from now
RESET_HEADERS = ("x-ratelimit-reset", "ratelimit-reset", "x-rate-limit-reset")
REMAINING_HEADERS = ("x-ratelimit-remaining", "ratelimit-remaining", "x-rate-limit-remaining")


class RateLimited(Exception):
    """Raised by a searcher when the provider refuses a call for its quota: the call is not
    counted as a failure, the searcher is paused for ``retry_after`` seconds (a default
    if None), and the lookup stays pending until the searcher runs again."""

    def __init__(self, retry_after: Optional[float] = None, message: str = ""):
        wait = DEFAULT_PAUSE_SECS if retry_after is None else float(retry_after)
        if math.isnan(wait):  # a garbled header the searcher read itself
            wait = DEFAULT_PAUSE_SECS
        # never 0: a refused call offered again at once is refused again, in a tight loop
        self.retry_after = min(max(wait, MIN_PAUSE_SECS), MAX_PAUSE_SECS)
        super().__init__(message or f"rate limited: retry in {self.retry_after:g}s")


class CallSignals:
    """What ``check_rate_limit`` learnt during one call: a pause for the calls after it."""
    __slots__ = ("pause_secs",)

    def __init__(self) -> None:
        self.pause_secs = 0.0


CURRENT_CALL: "contextvars.ContextVar[Optional[CallSignals]]" = contextvars.ContextVar(
    "rc_cts_call_signals", default=None)


def check_rate_limit(response: Any) -> Any:
    """Give it each response from the provider (requests, httpx, aiohttp...): returns the
    response, raises ``RateLimited`` for a 429, and after a response that used the last call
    (``X-RateLimit-Remaining: 0`` with a reset time) pauses the searcher's later calls."""
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(response, "status", None)
    headers = getattr(response, "headers", None) or {}
    if status == 429:
        raise RateLimited(wait_from_headers(headers), "the provider answered 429 Too Many Requests")
    if _header(headers, REMAINING_HEADERS) == "0":
        wait = wait_from_headers(headers, default=None)
        signals = CURRENT_CALL.get()
        if wait is not None and signals is not None:
            signals.pause_secs = max(signals.pause_secs, wait)
    return response


def wait_from_headers(headers: Mapping[str, Any], default: Optional[float] = DEFAULT_PAUSE_SECS,
                      now: Optional[float] = None) -> Optional[float]:
    """Seconds until the provider accepts calls again: ``Retry-After`` (seconds or an HTTP
    date), else a reset header (seconds from now, or a Unix time); ``default`` if none reads."""
    now = time.time() if now is None else now
    retry_after = _header(headers, ("retry-after",), first_of_list=False)  # an HTTP date has a comma
    if retry_after is not None:
        wait = _seconds(retry_after, now, dates=True)
        if wait is not None:
            return wait
    reset = _header(headers, RESET_HEADERS)
    if reset is not None:
        wait = _seconds(reset, now, dates=False)
        if wait is not None:
            return wait
    return default


def _seconds(text: str, now: float, dates: bool) -> Optional[float]:
    try:
        value = float(text)
    except ValueError:
        if not dates:
            return None
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None or when.tzinfo is None:
            return None
        value = when.timestamp()
        return min(max(value - now, 0.0), MAX_PAUSE_SECS)
    if not math.isfinite(value) or value < 0:  # not a time
        return None
    if value > EPOCH_AFTER * 1000:   # milliseconds since the epoch
        value = value / 1000 - now
    elif value > EPOCH_AFTER:
        value -= now
    return min(max(value, 0.0), MAX_PAUSE_SECS)


def _header(headers: Mapping[str, Any], names, first_of_list: bool = True) -> Optional[str]:
    """The first of ``names`` present, case-insensitively, in any mapping of headers; of a
    list ("10, 500;w=86400"), the first item."""
    get = getattr(headers, "get", None)
    for name in names:
        value = get(name) if get is not None else None
        if value is None:
            for key, item in headers.items():
                if isinstance(key, str) and key.lower() == name:
                    value = item
                    break
        if value is not None:
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            return (text.split(",")[0] if first_of_list else text).strip()
    return None
