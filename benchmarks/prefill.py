"""Fill a store with N complete results for /cts/bench (net.ip 10.x.y.z), in bulk, for benchmarks."""
import sqlite3
import time

from rc_cts.http.protocol import request_id
from rc_cts.store import LookupRecord, MemoryStore

HIT = {"props": [{"type": "string", "name": "Value", "value": ""}, {"type": "number", "name": "Score", "value": 7}]}


def artifact(i: int) -> dict:
    return {"type": "net.ip", "value": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}


def records(n: int):
    for i in range(n):
        a = artifact(i)
        hit = {"props": [dict(HIT["props"][0], value=a["value"]), HIT["props"][1]]}
        yield LookupRecord(request_id("bench", a), "bench", a, [hit], True)


def prefill(store, n: int) -> None:
    if isinstance(store, MemoryStore):
        for record in records(n):
            store.put(record)
    elif hasattr(store, "_db"):  # SQLite: one transaction
        expires = time.time() + store.ttl
        with store._lock:
            store._db.execute("BEGIN")
            store._db.executemany("INSERT OR REPLACE INTO lookups (id, record, complete, expires) VALUES (?, ?, 1, ?)",
                                  ((r.id, r.to_json(), expires) for r in records(n)))
            store._db.execute("COMMIT")
    else:  # Redis: pipelines of 10,000
        pipe = store._redis.pipeline(transaction=False)
        for i, record in enumerate(records(n), 1):
            pipe.set(store._key(record.id), record.to_json(), px=store.ttl_ms)
            if i % 10000 == 0:
                pipe.execute()
        pipe.execute()
