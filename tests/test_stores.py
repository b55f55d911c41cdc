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


def test_sqlite_path_directories_are_made_private(tmp_path):
    store = SQLiteStore(str(tmp_path / "a" / "b" / "results.sqlite3"))
    store.close()
    for directory in (tmp_path / "a", tmp_path / "a" / "b"):
        assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "a" / "b" / "results.sqlite3").is_file()


def test_sqlite_path_directory_that_cannot_be_made_names_the_option(tmp_path, run_cli):
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "sub" / "results.sqlite3"
    with pytest.raises(StoreError, match=r"option 'sqlite_path' .*: cannot create the directory .*/file: a file is in the way"):
        SQLiteStore(str(path))
    proc = run_cli(f"[custom_threat_service]\nstore = sqlite\nsqlite_path = {path}\n", wait=False)
    assert proc.proc.wait(30) == 1
    assert "cannot start: [custom_threat_service] option 'sqlite_path': cannot create the directory" in proc.log
    assert "Traceback" not in proc.log


def test_redis_url_password_is_not_logged():
    assert safe_url("rediss://user:s3cret@redis.example:6380/1") == "rediss://user:***@redis.example:6380/1"
    assert safe_url("redis://localhost:6379/0") == "redis://localhost:6379/0"


# -- the memory store's byte bound ------------------------------------------------------------
def test_memory_store_bounded_in_bytes_least_recently_used_first():
    one = len(record("r0", complete=True, hits=[{"props": [{"name": "b", "value": "x" * 1000}]}]).to_json())
    store = MemoryStore(maxsize=100, ttl=600, max_bytes=3 * one + 50)  # room for 3 (their times vary)
    for i in range(3):
        store.put(record(f"r{i}", complete=True, hits=[{"props": [{"name": "b", "value": "x" * 1000}]}]))
    assert store.get("r0") is not None           # r0 used: r1 is now the least recently used
    store.put(record("r3", complete=True, hits=[{"props": [{"name": "b", "value": "x" * 1000}]}]))
    assert store.get("r1") is None and all(store.get(k) for k in ("r0", "r2", "r3"))
    assert store.nbytes == sum(len(store.get(k).to_json()) for k in ("r0", "r2", "r3")) and len(store) == 3
    entries = MemoryStore(maxsize=2, ttl=600, max_bytes=10**9)  # the entry bound still holds
    for i in range(3):
        entries.put(record(f"e{i}"))
    assert len(entries) == 2 and entries.get("e0") is None


def test_memory_store_does_not_keep_a_record_larger_than_its_bound():
    store = MemoryStore(maxsize=100, ttl=600, max_bytes=5000)
    store.put(record("small", complete=True))
    store.put(record("big"))                                   # pending, small
    store.put(record("big", complete=True, hits=[{"props": [{"name": "b", "value": "x" * 6000}]}]))
    assert store.get("big") is None                            # not kept, and no stale pending record
    assert store.get("small") is not None                      # nothing evicted to make room for it


def test_memory_store_byte_bound_through_a_server(start_service):
    from .searchers import BigHitSearcher
    bound = int(0.05 * 1024 * 1024)
    svc = start_service([BigHitSearcher()], cache_max_mb=0.05)
    store, client = svc.service.store, svc.client()
    ids = []
    for i in range(40):                    # ~4 KB each: the bound holds about 12 of them
        r = client.post("big", {"type": "net.uri", "value": f"4000:{i}"})
        assert r.status == 200 and len(r.json["hits"][0]["props"][0]["value"]) == 4000
        ids.append(r.json["id"])
        assert store.nbytes <= bound
        assert store.nbytes == sum(len(store.get(rid).to_json()) for rid in ids if store.get(rid))
    assert 8 <= len(store) < 40
    assert client.get("big", ids[0]).json["hits"] == []              # the oldest went first
    assert client.get("big", ids[-1]).json["hits"][0]["props"][1]["value"] == "39"
    held = len(store)
    r = client.post("big", {"type": "net.uri", "value": f"{bound}:huge"})  # over the whole bound
    assert r.status == 200 and len(r.json["hits"][0]["props"][0]["value"]) == bound
    assert store.get(r.json["id"]) is None and len(store) == held      # answered, not kept


# -- a StoreError keeps its cause, so the traceback of what failed survives ---------------------
def test_redis_store_error_keeps_its_cause():
    import redis
    from .redis_server import free_port
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    for call in (lambda: store.get("x"), lambda: store.put(record()), lambda: store.pending(),
                 lambda: store.lease("x", "A", 1), lambda: store.release("x", "A")):
        with pytest.raises(StoreError) as exc:
            call()
        assert isinstance(exc.value.__cause__, redis.RedisError)


def test_sqlite_store_error_keeps_its_cause(tmp_path):
    import sqlite3
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(StoreError) as exc:
        SQLiteStore(str(tmp_path / "dir.sqlite3"))
    assert isinstance(exc.value.__cause__, (sqlite3.Error, OSError))
    store = SQLiteStore(str(tmp_path / "ok.sqlite3"))
    store.close()
    with pytest.raises(StoreError) as exc:
        store.get("x")
    assert isinstance(exc.value.__cause__, sqlite3.Error)


def test_store_gate_error_keeps_its_cause():
    """The gate's thread turns any exception from a store into a StoreError (a bug in a store
    must not kill the thread).  The memory store raises no StoreError of its own."""
    import threading
    from rc_cts.scheduler import Scheduler
    from rc_cts.store.gate import StoreGate

    class Broken(MemoryStore):
        def get(self, request_id):
            raise KeyError("the store's own bug")

    store = Broken()
    store.blocking = True  # called in the gate's thread
    got, done = [], threading.Event()
    gate = StoreGate(store, Scheduler(), lambda fn: fn())

    def on_result(value, error):
        got.append(error)
        done.set()
    gate.call(lambda s: s.get("x"), on_result)
    assert done.wait(5)
    assert isinstance(got[0], StoreError) and isinstance(got[0].__cause__, KeyError)
    gate.close()


def test_ping_is_a_cheap_round_trip(make_store):
    """/readyz asks each store this, through the gate."""
    assert make_store().ping() is None


def test_ping_of_a_store_that_is_gone_raises_a_store_error(tmp_path):
    from .redis_server import free_port
    store = SQLiteStore(str(tmp_path / "gone.sqlite3"))
    store.close()
    with pytest.raises(StoreError):
        store.ping()
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with pytest.raises(StoreError):
        store.ping()
    store.close()
