"""A Redis store: several rc-cts processes (replicas) share results and leases."""
from __future__ import annotations

import math
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ..lookups.quota import Quota, Window, margin_secs
from .answers import AnswerKey, CachedAnswer, live_answers, prepare_entries
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
# counted at once so that replicas sharing the quota never pass it together, on Redis's own
# clock (ARGV[1], a replica's time, is not used: clocks drift apart).  KEYS[1] is the
# provider's pause (a 429 seen by any replica), the others the windows.  Returns {wait, left...}:
# wait is 0 when the call is counted, else the milliseconds until every window has room; then
# the calls left in each window.
QUOTA = """
local clock = redis.call('TIME')  -- Redis's clock, not each replica's: one time for all of them
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
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
# The answer cache, bounded in entries and bytes for every replica at once: each answer is a key
# <prefix>answer:<member> expiring with the answer (PX), indexed in a sorted set (member -> when
# it expires, ms) with its size in a hash and the sizes' sum in a counter.  One call puts a batch
# and trims: index members already expired go (their keys did, by PX), then the replaced and the
# dropped entries, then the new ones are added, then the soonest-expiring are popped while past
# a bound.  Returns the entries indexed.
# KEYS: index, sizes, byte counter.  ARGV: now (ms), max entries, max bytes, key prefix, the
# number n of members to drop, those n members, then member, expires (ms), JSON text of each entry.
PUT_ANSWERS = """
local index, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local now, max_entries, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local base, drops = ARGV[4], tonumber(ARGV[5])
local bytes = tonumber(redis.call('GET', total) or '0')
local function forget(member)
    local size = redis.call('HGET', sizes, member)
    if size then
        bytes = bytes - tonumber(size)
        redis.call('HDEL', sizes, member)
    end
end
for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, 1000)) do
    forget(member)
    redis.call('ZREM', index, member)
end
for i = 6, 5 + drops do
    forget(ARGV[i])
    redis.call('ZREM', index, ARGV[i])
    redis.call('DEL', base .. ARGV[i])
end
for i = 6 + drops, #ARGV, 3 do
    local member, body = ARGV[i], ARGV[i + 2]
    forget(member)
    redis.call('SET', base .. member, body, 'PX', math.max(1, tonumber(ARGV[i + 1]) - now))
    redis.call('ZADD', index, ARGV[i + 1], member)
    redis.call('HSET', sizes, member, #body)
    bytes = bytes + #body
end
local count = redis.call('ZCARD', index)
while count > 0 and (count > max_entries or bytes > max_bytes) do
    local member = redis.call('ZPOPMIN', index)[1]
    forget(member)
    redis.call('DEL', base .. member)
    count = count - 1
end
if count == 0 then bytes = 0 end
redis.call('SET', total, bytes)
return count
"""
# Remove answers (clear_answers): KEYS as above; ARGV: key prefix, then members.  Returns how
# many of their keys were still there, i.e. the unexpired answers removed.
REMOVE_ANSWERS = """
local index, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local bytes = tonumber(redis.call('GET', total) or '0')
local removed = 0
for i = 2, #ARGV do
    local size = redis.call('HGET', sizes, ARGV[i])
    if size then
        bytes = bytes - tonumber(size)
        redis.call('HDEL', sizes, ARGV[i])
    end
    redis.call('ZREM', index, ARGV[i])
    removed = removed + redis.call('DEL', ARGV[1] .. ARGV[i])
end
if redis.call('ZCARD', index) == 0 then bytes = 0 end
redis.call('SET', total, bytes)
return removed
"""
CLEAR_BATCH = 500  # members removed per script call by clear_answers
MAX_ANSWER_LIFE_MS = 10 * 365 * 86400 * 1000  # an answer kept "forever" (inf) is kept this long
TIMEOUT = 1.0  # seconds: a Redis that does not answer must not hold the event loop for long
# Percent-encoded in the service and artifact parts of a member: ':' separates the parts, the
# others are MATCH pattern characters, '%' keeps the encoding one to one.
_ESCAPES = str.maketrans({c: f"%{ord(c):02X}" for c in ":*?[]\\%"})


def _expires_ms(expires: float, now_ms: int) -> int:
    """When an answer's key expires: in whole ms, not before the answer does, and a finite time."""
    latest = now_ms + MAX_ANSWER_LIFE_MS
    return latest if expires * 1000 >= latest else math.ceil(expires * 1000)


def _escape(part: str) -> str:
    """A key part with no ':' that matches only itself in a MATCH pattern: so that clearing
    service "a" leaves "a:b" alone, and "a*" is no wildcard."""
    return part.translate(_ESCAPES)


def safe_url(url: str) -> str:
    """The URL without its password, for logs."""
    parts = urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


class RedisStore(Store):
    """Records expire with ``ttl``; pending ids are kept in a sorted set for takeover.

    Answers live under ``<prefix>answer:<service>:<artifact>:<searcher>`` (service and artifact
    escaped, see ``_escape``), indexed in ``<prefix>answers`` with their sizes in
    ``<prefix>answers:sizes`` and the total in ``<prefix>answers:bytes``: see PUT_ANSWERS."""

    def __init__(self, url: str, ttl: float = 600, prefix: str = "rc_cts:",
                 answers_max_entries: int = 100000, answers_max_bytes: int = 256 * 1024 * 1024):
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
        self.answers_max_entries = answers_max_entries
        self.answers_max_bytes = answers_max_bytes
        self._answer_prefix = prefix + "answer:"
        self._answer_index = prefix + "answers"
        self._answer_sizes = prefix + "answers:sizes"
        self._answer_bytes = prefix + "answers:bytes"
        self._put_answers = self._redis.register_script(PUT_ANSWERS)
        self._remove_answers = self._redis.register_script(REMOVE_ANSWERS)

    def _key(self, request_id: str) -> str:
        return f"{self.prefix}lookup:{request_id}"

    @staticmethod
    def _member(key: AnswerKey) -> str:
        """An answer's name in the index, and its key after the prefix."""
        return f"{_escape(key.service)}:{_escape(key.artifact)}:{key.searcher}"

    def _answer_key(self, key: AnswerKey) -> str:
        return self._answer_prefix + self._member(key)

    @property
    def _answer_keys(self) -> List[str]:
        """The KEYS of the answer scripts."""
        return [self._answer_index, self._answer_sizes, self._answer_bytes]

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

    def get_answers(self, keys: Sequence[AnswerKey]) -> Dict[AnswerKey, CachedAnswer]:
        if not keys:
            return {}
        texts = self._call(self._redis.mget, [self._answer_key(k) for k in keys])
        return live_answers(list(zip(keys, texts)))

    def get_with_answers(self, request_id: str, keys: Sequence[AnswerKey]) \
            -> Tuple[Optional[LookupRecord], Dict[AnswerKey, CachedAnswer]]:
        """One MGET: the record's key and the answers' keys."""
        texts = self._call(self._redis.mget, [self._key(request_id), *(self._answer_key(k) for k in keys)])
        record = LookupRecord.from_json(texts[0]) if texts[0] else None
        return record, live_answers(list(zip(keys, texts[1:])))

    def put_answers(self, entries: Sequence[Tuple[AnswerKey, CachedAnswer]]) -> None:
        """One script call for the whole batch, trim included."""
        now = time.time()
        keep, drop = prepare_entries(entries, self.answers_max_bytes, now)
        if not keep and not drop:
            return
        now_ms = int(now * 1000)
        args: list = [now_ms, self.answers_max_entries, self.answers_max_bytes,
                      self._answer_prefix, len(drop), *(self._member(k) for k in drop)]
        for entry in keep:
            args += [self._member(entry.key), _expires_ms(entry.expires, now_ms), entry.text]
        self._call(self._put_answers, self._answer_keys, args)

    def clear_answers(self, service: Optional[str] = None, artifact: Optional[str] = None) -> int:
        """ZSCAN of the index, then a script per CLEAR_BATCH members: counts the answers whose
        keys were still there (unexpired); index members of expired ones go uncounted.  Answers
        put meanwhile by another replica may stay."""
        parts = [None if part is None else _escape(part) for part in (service, artifact)]
        pattern = f"{parts[0] or '*'}:{parts[1] or '*'}:*"

        def ours(member: str) -> bool:
            got = member.split(":", 2)
            return len(got) == 3 and all(want is None or want == part for want, part in zip(parts, got))

        def clear() -> int:
            removed, batch = 0, []
            for member, _ in self._redis.zscan_iter(self._answer_index, match=pattern, count=1000):
                if ours(member):
                    batch.append(member)
                if len(batch) >= CLEAR_BATCH:
                    removed += int(self._remove_answers(self._answer_keys, [self._answer_prefix, *batch]))
                    batch = []
            if batch:
                removed += int(self._remove_answers(self._answer_keys, [self._answer_prefix, *batch]))
            return removed
        return self._call(clear)

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
            self._args += [w.limit, int((w.seconds + margin_secs(w.seconds)) * 1000)]
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
