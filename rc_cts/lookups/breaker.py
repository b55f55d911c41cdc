"""A circuit breaker per searcher, driven by its real calls.

An API that is down answers nothing useful, slowly: calling it for every lookup wastes the
searcher's threads and hammers a provider that is struggling already.  After a run of
failures (or too many failures among the last calls) the breaker *opens*: the searcher is
not called, and its lookups end incomplete at once, to be asked again later.  After a
cool-down it is *half-open*: one probe call is let through; its success closes the breaker,
its failure opens it again for a cool-down twice as long.

The states and their moves, as h11 keeps its protocol state: explicit, and only here.
"""
from __future__ import annotations

import enum
import logging
import time
from collections import deque
from typing import Callable, Deque, Optional

from .limits import SearcherLimits

LOG = logging.getLogger(__name__)


class BreakerState(enum.Enum):
    CLOSED = "closed"        # calls go through
    OPEN = "open"            # no call goes through until the cool-down is over
    HALF_OPEN = "half-open"  # one probe call is out, or may go out; the others are refused


GAUGE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Breaker:
    """``allow()`` before a call (True: make it; ``probe`` says whether it is the probe), then
    ``record(ok, probe)`` with how it went: True (answered), False (failed or timed out), or
    None (it never reached the provider: deferred by its quota, or dropped)."""

    def __init__(self, label: str, limits: SearcherLimits, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.failures_in_a_row = limits.breaker_failures
        self.ratio = limits.breaker_failure_ratio
        self.cooldown_secs = limits.breaker_cooldown_secs
        self.max_cooldown_secs = limits.breaker_max_cooldown_secs
        self._clock = clock
        self._recent: Deque[bool] = deque(maxlen=limits.breaker_window)  # True: a failure
        self._in_a_row = 0
        self.state = BreakerState.CLOSED
        self.since = time.time()       # wall clock, for people: /readyz, rc-cts searchers
        self.trips = 0                 # times it opened since the start, for /metrics
        self._trips_in_a_row = 0       # sets the cool-down; 0 once a probe succeeds
        self._retry_at = 0.0           # (clock) when an open breaker lets a probe through
        self._probe_out = False
        self.probe = False             # the call just allowed is the probe

    @property
    def enabled(self) -> bool:
        return self.failures_in_a_row > 0 or self.ratio > 0

    def retry_in(self) -> float:
        """Seconds until an open breaker lets its probe through (0 if not open)."""
        return max(0.0, self._retry_at - self._clock()) if self.state is BreakerState.OPEN else 0.0

    def allow(self) -> bool:
        """Whether a call may go out now; sets ``probe`` for the half-open breaker's one call."""
        self.probe = False
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if self._clock() < self._retry_at:
                return False
            self._move(BreakerState.HALF_OPEN)
            LOG.info("searcher %s: breaker half-open: one probe call decides", self.label)
        if self._probe_out:
            return False
        self._probe_out = self.probe = True
        return True

    def record(self, ok: Optional[bool], probe: bool = False) -> None:
        if self.state is BreakerState.HALF_OPEN:
            if not probe:
                return  # a call from before it opened: the probe decides
            self._probe_out = False
            if ok is True:
                self._close()
            elif ok is False:
                self._open("the probe call failed")
            return  # None: the probe never reached the provider; the next call probes
        if self.state is BreakerState.OPEN or ok is None or not self.enabled:
            return
        self._recent.append(not ok)
        self._in_a_row = 0 if ok else self._in_a_row + 1
        if self.failures_in_a_row and self._in_a_row >= self.failures_in_a_row:
            self._open(f"{self._in_a_row} calls in a row failed or timed out")
        elif (self.ratio and len(self._recent) == self._recent.maxlen
              and sum(self._recent) >= self.ratio * len(self._recent)):
            self._open(f"{sum(self._recent)} of the last {len(self._recent)} calls failed or timed out")

    def _open(self, why: str) -> None:
        cooldown = min(self.cooldown_secs * 2 ** min(self._trips_in_a_row, 30), self.max_cooldown_secs)
        self._trips_in_a_row += 1
        self.trips += 1
        self._retry_at = self._clock() + cooldown
        self._move(BreakerState.OPEN)
        LOG.warning("searcher %s: breaker open: %s; not called for %gs, then one probe call",
                    self.label, why, cooldown)

    def _close(self) -> None:
        self._trips_in_a_row = 0
        self._in_a_row = 0
        self._recent.clear()
        self._move(BreakerState.CLOSED)
        LOG.info("searcher %s: breaker closed: the probe call succeeded", self.label)

    def _move(self, state: BreakerState) -> None:
        self.state = state
        self.since = time.time()
