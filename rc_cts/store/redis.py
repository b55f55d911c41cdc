"""A Redis store: several rc-cts processes (replicas) share results and leases."""
from __future__ import annotations

import time
import uuid
from typing import List, Optional, Sequence
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..lookups.quota import MARGIN_SECS, Quota, Window
from .base import LookupRecord, Store, StoreError

# Take the lease if free or expired, or renew it if ours: atomic, so two replicas never both win.
LEASE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A searcher's rate-limit windows, as sliding logs (sorted sets of call times), all checked and
# counted at once so that replicas sharing the quota never pass it together.  KEYS[1] is the
# provider's pause (a 429 seen by any replica), the others the windows.  Returns {wait, left...}:
# wait is 0 when the call is counted, else the milliseconds until every window has room; then
# the calls left in each window.
QUOTA = """
local now = tonumber(ARGV[1])
local wait = 0
local paused = redis.call('PTTL', KEYS[1])
if paused > 0 then wait = paused end
local counts = {}
for i = 2, #KEYS do
    local limit = tonumber(ARGV[2 * i - 2])
    local span = tonumber(ARGV[2 * i - 1])
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - span)
    local count = redis.call('ZCARD', KEYS[i])
    if count >= limit then
        local oldest = redis.call('ZRANGE', KEYS[i], count - limit, count - limit, 'WITHSCORES')
        wait = math.max(wait, tonumber(oldest[2]) + span - now)
    end
    counts[i - 1] = count
end
if wait == 0 then
    for i = 2, #KEYS do
        redis.call('ZADD', KEYS[i], now, ARGV[#ARGV])
        redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i - 1]))
        counts[i - 1] = counts[i - 1] + 1
    end
end
local result = {math.ceil(wait)}
for i = 2, #KEYS do result[i] = math.max(0, tonumber(ARGV[2 * i - 2]) - counts[i - 1]) end
return result
"""
TIMEOUT = 1.0  # seconds: a Redis that does not answer must not hold the event loop for long


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RedisStore(Store):
    """Records expire with ``ttl``; pending ids are kept in a sorted set for takeover."""

    def __init__(self, url: str, ttl: float = 600, prefix: str = "rc_cts:"):
        try:
            self.url = safe_url(url)
            self._redis = redis.Redis.from_url(
                url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, decode_responses=True,
                retry=Retry(NoBackoff(), 0), health_check_interval=10)
        except ValueError as exc:  # a malformed URL: said without the URL, which may hold a password
            raise StoreError("redis_url is not usable: a malformed URL, or a scheme other than "
                             "redis://, rediss:// or unix://") from exc
        self.ttl_ms = int(ttl * 1000)
        self.prefix = prefix
        self._pending = prefix + "pending"
        self._lease = self._redis.register_script(LEASE)
        self._release = self._redis.register_script(RELEASE)
        self._quota = self._redis.register_script(QUOTA)

    def _key(self, request_id: str) -> str:
        return f"{self.prefix}lookup:{request_id}"

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise StoreError(f"Redis store {self.url}: {exc}") from exc

    def get(self, request_id: str) -> Optional[LookupRecord]:
        text = self._call(self._redis.get, self._key(request_id))
        return LookupRecord.from_json(text) if text else None

    def put(self, record: LookupRecord) -> None:
        def write():
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self._key(record.id), record.to_json(), px=self.ttl_ms)
            if record.complete:
                pipe.zrem(self._pending, record.id)
            else:
                pipe.zadd(self._pending, {record.id: time.time()})
            pipe.execute()
        self._call(write)

    def ping(self) -> None:
        """Redis PING: one round trip, within the socket timeout."""
        self._call(self._redis.ping)

    def pending(self, limit: int = 1000) -> List[LookupRecord]:
        def read():
            ids = self._redis.zrange(self._pending, 0, limit - 1)
            texts = self._redis.mget([self._key(i) for i in ids]) if ids else []
            records, gone = [], []
            for rid, text in zip(ids, texts):
                record = LookupRecord.from_json(text) if text else None
                if record is None or record.complete:
                    gone.append(rid)
                else:
                    records.append(record)
            if gone:
                self._redis.zrem(self._pending, *gone)
            return records
        return self._call(read)

    def lease(self, request_id: str, owner: str, seconds: float) -> bool:
        return bool(self._call(self._lease, [f"{self.prefix}lease:{request_id}"],
                               [owner, int(seconds * 1000)]))

    def release(self, request_id: str, owner: str) -> None:
        self._call(self._release, [f"{self.prefix}lease:{request_id}"], [owner])

    def count_call(self, keys: List[str], args: list) -> List[int]:
        """Run the quota script: [0 if the call is counted, else milliseconds to wait, then the
        calls left in each window]."""
        return [int(n) for n in self._quota(keys, args)]

    def pause_quota(self, key: str, seconds: float) -> None:
        """Hold every replica's calls for ``seconds``, unless a longer pause is set already."""
        ms = max(1, int(seconds * 1000))
        current = self._redis.pttl(key)
        if current is None or int(current) < ms:
            self._redis.set(key, "1", px=ms)

    def make_quota(self, name: str, windows: Sequence[Window]) -> Quota:
        """One quota for every replica sharing this Redis (keys under the prefix)."""
        return RedisQuota(self, name, windows)

    def close(self) -> None:
        self._redis.close()


class RedisQuota(Quota):
    """A searcher's windows in Redis; a Redis that cannot answer lets the call wait a second."""

    blocking = True

    def __init__(self, store: RedisStore, name: str, windows: Sequence[Window]):
        self.windows = tuple(windows)
        self._store = store
        self._pause_key = f"{store.prefix}quota:{name}:paused"
        self._keys = [self._pause_key] + [f"{store.prefix}quota:{name}:{w.limit}/{w.seconds:g}"
                                          for w in self.windows]
        self._args: List[int] = []
        for w in self.windows:
            self._args += [w.limit, int((w.seconds + MARGIN_SECS) * 1000)]
        self._left = [w.limit for w in self.windows]  # as the last call made here found them

    def acquire(self) -> float:
        member = uuid.uuid4().hex
        try:
            wait_ms, *left = self._store.count_call(self._keys, [int(time.time() * 1000), *self._args, member])
        except redis.RedisError:
            return 1.0
        self._left = left
        return float(wait_ms) / 1000.0

    def pause(self, seconds: float) -> None:
        try:
            self._store.pause_quota(self._pause_key, seconds)
        except redis.RedisError:
            pass  # this process pauses anyway; the other replicas will see their own 429

    def remaining(self) -> List[int]:
        return list(self._left)
