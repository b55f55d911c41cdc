"""Rate limits as APIs state them: "4/minute", "1000 per day", "10/second, 500/day".

Every window holds at once, as a sliding log: no span of a window's length ever sees more
calls than its limit.  A call that would pass one waits: the quota answers how long until
every window has room, and the lookup stays pending meanwhile.  Per process by default;
a Redis store shares each searcher's windows across replicas (``RedisStore.make_quota``).
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Sequence

# A call is counted when it starts, and reaches the API a little later (later still for a
# process's first call: its connection is new): each window is held this much longer, so that
# the API never sees more than the window allows.  A little for a second's window, up to 2 s
# for an hour's and longer ones (a 60 s window: 0.65 s).
MARGIN_SECS = 0.05
MARGIN_SHARE = 0.01
MAX_MARGIN_SECS = 2.0
UNITS = {"second": 1, "sec": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600,
         "day": 86400, "d": 86400, "week": 7 * 86400, "month": 30 * 86400}
_WINDOW = re.compile(r"^\s*([\d,_]+)\s*(?:/|per)\s*(\d*)\s*([a-z]+)\s*$", re.IGNORECASE)
# A comma between windows, not one in "15,000": those sit between a digit and three more
_SEPARATOR = re.compile(r";|,(?!(?<=\d,)\d{3}(?!\d))")


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.limit}/{self.seconds:g}s"

    def describe(self) -> str:
        """As people write it: "500/day", "10/second", "25/2hours"."""
        for name, seconds in (("month", 30 * 86400), ("week", 7 * 86400), ("day", 86400), ("hour", 3600),
                              ("minute", 60), ("second", 1)):
            if self.seconds % seconds == 0:
                count = int(self.seconds // seconds)
                return f"{self.limit}/{name}" if count == 1 else f"{self.limit}/{count}{name}s"
        return f"{self.limit}/{self.seconds:g}seconds"


def parse_rate_limit(text: str) -> List[Window]:
    """``"10/second, 500/day"`` -> windows; ValueError naming the part it cannot read."""
    windows = []
    for part in filter(None, (p.strip() for p in _SEPARATOR.split(text or ""))):
        m = _WINDOW.match(part)
        unit = m and _unit(m.group(3).lower())
        if not m or unit is None:
            raise ValueError(f"rate limit {part!r} is not like '4/minute' or '1000 per day'")
        limit = int(m.group(1).replace(",", "").replace("_", ""))
        if limit <= 0:
            raise ValueError(f"rate limit {part!r} must allow at least one call")
        windows.append(Window(limit, unit * int(m.group(2) or 1)))
    return windows


def _unit(word: str) -> Optional[int]:
    """Seconds in ``word``: "minute", "minutes", "min", "mins", "m"... (not "ms")."""
    if word in UNITS:
        return UNITS[word]
    return UNITS.get(word[:-1]) if word.endswith("s") and len(word) > 3 else None


def margin_secs(window_seconds: float) -> float:
    """How much longer than its length a window is held (see MARGIN_SECS)."""
    return min(MARGIN_SECS + MARGIN_SHARE * window_seconds, MAX_MARGIN_SECS)


class Quota:
    """``acquire()`` -> 0 and the call is counted in every window, or the seconds to wait."""

    windows: Sequence[Window] = ()
    blocking = False  # whether acquire() and pause() do I/O (then they run off the event loop)

    def acquire(self) -> float:
        return 0.0

    def pause(self, seconds: float) -> None:
        """The provider says its quota is spent for ``seconds``: no call is counted until then."""

    def remaining(self) -> List[int]:
        """Calls left in each window, as of now (a shared quota: as of this process's last call)."""
        return []


class LocalQuota(Quota):
    """Sliding logs in this process."""

    def __init__(self, windows: Sequence[Window]):
        self.windows = tuple(windows)
        self._logs: List[Deque[float]] = [deque() for _ in self.windows]
        self._lock = threading.Lock()
        self._paused_until = 0.0

    def acquire(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            wait = self._paused_until - now
            for window, log in zip(self.windows, self._logs):
                span = window.seconds + margin_secs(window.seconds)
                while log and log[0] <= now - span:
                    log.popleft()
                if len(log) >= window.limit:
                    wait = max(wait, log[len(log) - window.limit] + span - now)
            if wait > 0:
                return wait
            for log in self._logs:
                log.append(now)
            return 0.0

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def remaining(self) -> List[int]:
        now = time.monotonic()
        with self._lock:
            return [max(0, window.limit - sum(1 for t in log if t > now - window.seconds - margin_secs(window.seconds)))
                    for window, log in zip(self.windows, self._logs)]


NO_QUOTA = Quota()
