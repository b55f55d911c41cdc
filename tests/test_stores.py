"""The store contract, run against every store: memory, SQLite (a real file), Redis (a real server)."""
import time

import pytest

from rc_cts.store import LookupRecord, MemoryStore, StoreError
from rc_cts.store.redis import RedisStore, safe_url
from rc_cts.store.sqlite import TRIM_EVERY, SQLiteStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path):
    made = []

    def make(maxsize=10000, ttl=600):
        if request.param == "memory":
            store = MemoryStore(maxsize=maxsize, ttl=ttl)
        elif request.param == "sqlite":
            store = SQLiteStore(str(tmp_path / "store.sqlite3"), maxsize=maxsize, ttl=ttl)
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStore(server.url, ttl=ttl, prefix=request.getfixturevalue("redis_prefix"))
        made.append(store)
        return store

    make.kind = request.param
    yield make
    for store in made:
        store.close()


def record(rid="r1", complete=False, hits=None):
    return LookupRecord(rid, "svc", {"type": "net.ip", "value": "192.0.2.1"}, hits or [], complete)


def test_put_and_get(make_store):
    store = make_store()
    assert store.get("r1") is None
    store.put(record())
    got = store.get("r1")
    assert got.id == "r1" and got.service == "svc" and not got.complete
    hit = {"props": [{"type": "number", "name": "n", "value": 1}]}
    store.put(record(complete=True, hits=[hit]))
    got = store.get("r1")
    assert got.complete and got.hits == [hit] and got.artifact == {"type": "net.ip", "value": "192.0.2.1"}


def test_the_file_digest_is_kept_and_records_of_other_versions_load(make_store):
    store = make_store()
    rec = record()
    rec.file_sha256 = "ab" * 32
    store.put(rec)
    assert store.get("r1").file_sha256 == "ab" * 32
    store.put(record("r2"))
    assert store.get("r2").file_sha256 is None
    old = '{"id": "r3", "service": "svc", "artifact": {"type": "net.ip", "value": "x"}, "complete": false}'
    assert LookupRecord.from_json(old).file_sha256 is None  # written before the field existed
    newer = old[:-1] + ', "field_of_a_later_version": 1}'
    assert LookupRecord.from_json(newer).id == "r3"


def test_records_expire_with_the_ttl(make_store):
    store = make_store(ttl=0.3)
    store.put(record(complete=True))
    assert store.get("r1") is not None
    time.sleep(0.5)
    assert store.get("r1") is None


def test_pending_lists_incomplete_records_only(make_store):
    store = make_store()
    store.put(record("a"))
    store.put(record("b"))
    store.put(record("c", complete=True))
    assert sorted(r.id for r in store.pending()) == ["a", "b"]
    store.put(record("a", complete=True))
    assert [r.id for r in store.pending()] == ["b"]


def test_leases(make_store):
    store = make_store()
    assert store.lease("r1", "A", 10)
    assert not store.lease("r1", "B", 10)
    assert store.lease("r1", "A", 10)          # renewed by its owner
    store.release("r1", "B")                   # not B's to release
    assert not store.lease("r1", "B", 10)
    store.release("r1", "A")
    assert store.lease("r1", "B", 10)


def test_an_expired_lease_can_be_taken_over(make_store):
    store = make_store()
    assert store.lease("r1", "A", 0.2)
    assert not store.lease("r1", "B", 0.2)
    time.sleep(0.3)
    assert store.lease("r1", "B", 10)
    assert not store.lease("r1", "A", 10)


def test_results_survive_a_new_store_on_the_same_data(make_store):
    if make_store.kind == "memory":
        assert make_store().get("r1") is None  # memory: a new store is empty, by design
        return
    make_store().put(record(complete=True, hits=[{"props": []}]))
    assert make_store().get("r1").hits == [{"props": []}]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_size_stays_bounded(kind, tmp_path):
    store = (MemoryStore(maxsize=100) if kind == "memory"
             else SQLiteStore(str(tmp_path / "s.sqlite3"), maxsize=100))
    for i in range(2 * TRIM_EVERY + 50):
        store.put(record(f"r{i}", complete=True))
    assert len(store) <= 100 + TRIM_EVERY
    assert store.get(f"r{2 * TRIM_EVERY + 49}") is not None and store.get("r0") is None


def test_unreachable_redis_is_a_store_error_and_fast():
    from .redis_server import free_port
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    t0 = time.time()
    with pytest.raises(StoreError, match="Redis store"):
        store.get("x")
    with pytest.raises(StoreError):
        store.lease("x", "A", 1)
    assert time.time() - t0 < 3


def test_unusable_sqlite_path_is_a_store_error(tmp_path):
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StoreError, match="cannot open the SQLite store"):
        SQLiteStore(str(tmp_path / "dir.sqlite3"))


def test_redis_url_password_is_not_logged():
    assert safe_url("rediss://user:s3cret@redis.example:6380/1") == "rediss://user:***@redis.example:6380/1"
    assert safe_url("redis://localhost:6379/0") == "redis://localhost:6379/0"
