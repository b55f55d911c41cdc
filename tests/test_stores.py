"""The store contract, run against every store: memory, SQLite (a real file), Redis (a real server)."""
import logging
import threading
import time

import pytest

from rc_cts.store import LookupRecord, MemoryStore, StoreError
from rc_cts.store.answers import AnswerKey, CachedAnswer, artifact_digest
from rc_cts.store.redis import RedisStore, safe_url
from rc_cts.store.sqlite import TRIM_EVERY, SQLiteStore


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_store(request, tmp_path):
    made = []

    def make(maxsize=10000, ttl=600, answers_max_entries=100000, answers_max_bytes=256 * 1024 * 1024):
        bounds = {"answers_max_entries": answers_max_entries, "answers_max_bytes": answers_max_bytes}
        if request.param == "memory":
            store = MemoryStore(maxsize=maxsize, ttl=ttl, **bounds)
        elif request.param == "sqlite":
            store = SQLiteStore(str(tmp_path / "store.sqlite3"), maxsize=maxsize, ttl=ttl, **bounds)
        else:
            server = request.getfixturevalue("redis_server")
            store = RedisStore(server.url, ttl=ttl, prefix=request.getfixturevalue("redis_prefix"), **bounds)
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


# -- the per-searcher answer cache --------------------------------------------------------------
ART = artifact_digest("net.ip", "192.0.2.1")
HIT = {"props": [{"type": "string", "name": "Verdict", "value": "bad"}]}


def akey(searcher="Feed@0123abcd", service="svc", artifact=ART):
    return AnswerKey(service, artifact, searcher)


def answer(hits=None, fresh=60.0, stale=0.0, stored_at=None, pad=0):
    hits = [HIT] if hits is None else hits
    if pad:
        hits = [{"props": [{"type": "string", "name": "pad", "value": "x" * pad}]}]
    return CachedAnswer(hits, time.time() if stored_at is None else stored_at, float(fresh), float(stale))


def usage(store):
    """(entries, bytes) of the answers a store holds, read from its inside."""
    if isinstance(store, MemoryStore):
        with store._lock:
            store._answers.expire()
            return len(store._answers), int(store._answers.currsize)
    if isinstance(store, SQLiteStore):  # and the totals the triggers keep are the rows'
        assert store._run("SELECT entries, bytes FROM answers_usage").fetchone() == \
            store._run("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM answers").fetchone()
        count, total = store._run("SELECT COUNT(*), TOTAL(size) FROM answers WHERE expires > ?",
                                  (time.time(),)).fetchone()
        return count, int(total)
    r = store._redis  # and the byte counter is the sum of the sizes indexed
    assert int(r.get(store._answer_bytes) or 0) == sum(int(v) for v in r.hvals(store._answer_sizes))
    live = [m for m in r.zrange(store._answer_index, 0, -1) if r.exists(store._answer_prefix + m)]
    return len(live), sum(r.strlen(store._answer_prefix + m) for m in live)


def write_raw(store, key, text):
    """Junk where an answer is kept, behind the store's back."""
    expires = time.time() + 60
    if isinstance(store, MemoryStore):
        with store._lock:
            store._answers[key] = (expires, text)
    elif isinstance(store, SQLiteStore):
        store._run("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)", (*key, text, expires, len(text)))
    else:
        store._redis.set(store._answer_key(key), text, px=60000)


def test_answers_put_and_get(make_store):
    store = make_store()
    hit, none = akey("Hit@1"), akey("None@2")
    assert store.get_answers([hit, none]) == {}
    a, b = answer(), answer(hits=[])            # a "no hit" answer is an answer too
    store.put_answers([(hit, a), (none, b)])
    assert store.get_answers([hit, none, akey("Missing@3")]) == {hit: a, none: b}
    assert store.get_answers([]) == {}
    assert store.get_answers([akey("Hit@1", service="other")]) == {}


def test_answers_expire_at_their_own_time(make_store):
    store = make_store()
    short, long_ = akey("Short@1"), akey("Long@2")
    store.put_answers([(short, answer(fresh=0.1, stale=0.1)), (long_, answer(fresh=60))])
    assert set(store.get_answers([short, long_])) == {short, long_}
    time.sleep(0.35)
    assert set(store.get_answers([short, long_])) == {long_}


def test_an_expired_answer_is_not_stored_and_replaces_the_old_one(make_store):
    store = make_store()
    k = akey()
    store.put_answers([(akey("Old@1"), answer(stored_at=time.time() - 100, fresh=10, stale=10))])
    assert store.get_answers([akey("Old@1")]) == {} and usage(store) == (0, 0)
    store.put_answers([(k, answer())])
    store.put_answers([(k, answer(stored_at=time.time() - 100, fresh=10))])
    assert store.get_answers([k]) == {} and usage(store) == (0, 0)


def test_an_answer_that_never_expires(make_store):
    store = make_store()
    forever = answer(fresh=float("inf"))
    store.put_answers([(akey(), forever)])
    assert store.get_answers([akey()]) == {akey(): forever}


def test_replacing_an_answer_keeps_one_entry(make_store):
    store = make_store()
    k = akey()
    store.put_answers([(k, answer(pad=5000))])
    small = answer(hits=[])
    store.put_answers([(k, small)])
    assert store.get_answers([k]) == {k: small}
    assert usage(store) == (1, len(small.to_json()))
    if make_store.kind == "redis":
        assert int(store._redis.get(store._answer_bytes)) == len(small.to_json())
        assert store._redis.zcard(store._answer_index) == 1


def test_answers_bounded_in_entries_soonest_expiring_first(make_store):
    store = make_store(answers_max_entries=5)
    if make_store.kind == "memory":  # memory: the least recently used go first
        for i in range(5):
            store.put_answers([(akey(f"S{i}"), answer())])
        assert store.get_answers([akey("S0")])
        for i in range(5, 8):
            store.put_answers([(akey(f"S{i}"), answer())])
        assert sorted(k.searcher for k in store.get_answers([akey(f"S{i}") for i in range(8)])) == \
            ["S0", "S4", "S5", "S6", "S7"]
        return
    lives = [50, 10, 80, 20, 70, 30, 60, 40]
    for i, life in enumerate(lives):
        store.put_answers([(akey(f"S{i}"), answer(fresh=life))])
        assert usage(store)[0] <= 5
    kept = store.get_answers([akey(f"S{i}") for i in range(8)])
    assert sorted(k.searcher for k in kept) == ["S0", "S2", "S4", "S6", "S7"]  # lives 50..80
    store.put_answers([(akey(f"B{i}"), answer(fresh=100 + i)) for i in range(8)])  # one batch
    assert sorted(k.searcher for k in store.get_answers([akey(f"B{i}") for i in range(8)])) == \
        ["B3", "B4", "B5", "B6", "B7"]
    assert usage(store)[0] == 5


def test_answers_bounded_in_bytes_and_a_huge_one_is_not_kept(make_store, caplog):
    one = len(answer(pad=1000).to_json())
    bound = 3 * one + 50
    store = make_store(answers_max_bytes=bound)
    for i in range(8):
        store.put_answers([(akey(f"S{i}"), answer(pad=1000, fresh=60 + i))])
        count, total = usage(store)
        assert total <= bound and count <= 3
    assert usage(store)[0] == 3
    assert sorted(k.searcher for k in store.get_answers([akey(f"S{i}") for i in range(8)])) == ["S5", "S6", "S7"]
    store.put_answers([(akey("Huge@1"), answer(pad=10, fresh=1000))])
    held = set(store.get_answers([akey(f"S{i}") for i in range(8)]))
    with caplog.at_level(logging.WARNING, logger="rc_cts"):
        store.put_answers([(akey("Huge@1"), answer(pad=bound))])
    assert store.get_answers([akey("Huge@1")]) == {}              # nor its earlier answer
    assert set(store.get_answers([akey(f"S{i}") for i in range(8)])) == held  # nothing evicted for it
    assert usage(store) == (len(held), sum(len(a.to_json()) for a in store.get_answers(list(held)).values()))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "searcher Huge:" in warnings[0] and ART not in warnings[0] and "@1" not in warnings[0]


def test_clear_answers(make_store):
    store = make_store()
    other = artifact_digest("net.ip", "198.51.100.7")
    services = ["a", "a/b", "ab", "a:b", "a*", "a?", "[a]", "a%3Ab"]
    store.put_answers([(akey(s, service=svc, artifact=art), answer())
                       for svc in services for art in (ART, other) for s in ("S@1", "T@2")])
    every = [akey(s, service=svc, artifact=art) for svc in services for art in (ART, other) for s in ("S@1", "T@2")]
    assert len(store.get_answers(every)) == 32
    assert store.clear_answers(service="a") == 4
    left = store.get_answers(every)
    assert len(left) == 28 and not any(k.service == "a" for k in left)
    assert store.clear_answers(service="a/b", artifact=other) == 2
    left = store.get_answers(every)
    assert len(left) == 26 and set(k.artifact for k in left if k.service == "a/b") == {ART}
    assert store.clear_answers(service="a:b") == 4 and store.clear_answers(service="a*") == 4
    assert len(store.get_answers(every)) == 18 and store.get_answers([akey("S@1", service="a%3Ab")])
    assert store.clear_answers(service="nothing") == 0
    assert store.clear_answers(artifact=ART) == 10           # every service's answers for one artifact
    assert store.clear_answers() == 8
    assert store.get_answers(every) == {} and usage(store) == (0, 0)
    store.put_answers([(akey(), answer())])                   # and the cache works after it
    assert store.get_answers([akey()])


def test_get_with_answers(make_store):
    store = make_store()
    k = akey()
    assert store.get_with_answers("r1", [k]) == (None, {})
    store.put(record(complete=True, hits=[HIT]))
    a = answer()
    store.put_answers([(k, a)])
    rec, answers = store.get_with_answers("r1", [k, akey("Missing@1")])
    assert rec.id == "r1" and rec.hits == [HIT] and answers == {k: a}
    assert store.get_with_answers("r2", [k]) == (None, {k: a})
    assert store.get_with_answers("r1", [])[1] == {}


def test_a_corrupt_answer_is_skipped(make_store):
    store = make_store()
    good = akey("Good@1")
    store.put_answers([(good, answer())])
    junk = ["not json", "[1, 2]", '{"stored_at": "soon"}', '{"hits": 5, "fresh_secs": 100}', "null", "",
            answer(stored_at=time.time() - 100, fresh=10).to_json()]  # expired, though kept longer
    keys = [akey(f"Junk{i}") for i in range(len(junk))]
    for k, text in zip(keys, junk):
        write_raw(store, k, text)
    assert set(store.get_answers([good, *keys])) == {good}
    assert set(store.get_with_answers("r1", [good, *keys])[1]) == {good}


def test_many_answers_in_one_call(make_store):
    store = make_store()
    keys = [akey(f"S{i}@x") for i in range(1200)]  # past SQLite's 999 variables of old versions
    store.put_answers([(k, answer(hits=[])) for k in keys])
    assert len(store.get_answers(keys)) == 1200


def test_sqlite_answers_survive_a_restart_and_old_files_are_upgraded(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite3")
    db = sqlite3.connect(path)  # a file of a version without answers
    db.executescript("CREATE TABLE lookups (id TEXT PRIMARY KEY, record TEXT NOT NULL, "
                     "complete INTEGER NOT NULL, expires REAL NOT NULL);")
    db.execute("INSERT INTO lookups VALUES (?, ?, 1, ?)", ("r1", record(complete=True).to_json(), time.time() + 60))
    db.commit()
    db.close()
    store = SQLiteStore(path)
    assert store.get("r1").complete
    a = answer()
    store.put_answers([(akey(), a)])
    store.close()
    store = SQLiteStore(path)
    assert store.get_answers([akey()]) == {akey(): a}
    store.close()


def test_sqlite_answer_bounds_hold_between_trims_and_at_open(tmp_path):
    from rc_cts.store.sqlite import ANSWER_TRIM_EVERY
    path = str(tmp_path / "s.sqlite3")
    store = SQLiteStore(path, answers_max_entries=2000, answers_max_bytes=10**9)
    for i in range(ANSWER_TRIM_EVERY + 10):
        store.put_answers([(akey(f"S{i}"), answer(fresh=100 + i))])
    store.close()
    store = SQLiteStore(path, answers_max_entries=10, answers_max_bytes=10**9)  # smaller now
    assert usage(store)[0] == 10
    assert store.get_answers([akey(f"S{ANSWER_TRIM_EVERY + 9}")])
    for i in range(3 * ANSWER_TRIM_EVERY):
        store.put_answers([(akey(f"T{i}"), answer(fresh=1000 + i))])
        assert usage(store)[0] <= 10
    store.close()


def test_redis_answers_are_shared_between_replicas(redis_server, redis_prefix):
    one = RedisStore(redis_server.url, prefix=redis_prefix)
    two = RedisStore(redis_server.url, prefix=redis_prefix)
    a = answer()
    one.put_answers([(akey(), a)])
    assert two.get_answers([akey()]) == {akey(): a}
    assert two.clear_answers(service="svc") == 1 and one.get_answers([akey()]) == {}
    member = one._redis.zrange(one._answer_index, 0, -1)
    assert member == [] and one._redis.hlen(one._answer_sizes) == 0
    one.put_answers([(akey(), a)])
    assert one._redis.pttl(one._answer_key(akey())) <= 60000  # expires with the answer
    one.close()
    two.close()


def test_redis_answer_bounds_hold_across_replicas(redis_server, redis_prefix):
    stores = [RedisStore(redis_server.url, prefix=redis_prefix, answers_max_entries=50,
                         answers_max_bytes=10**9) for _ in range(2)]
    errors = []

    def fill(store, name):
        try:
            for i in range(200):
                store.put_answers([(akey(f"{name}{i % 120}"), answer(pad=i, fresh=100 + i))])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=fill, args=(s, n)) for s, n in zip(stores, "AB")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    r, store = stores[0]._redis, stores[0]
    members = r.zrange(store._answer_index, 0, -1)
    assert len(members) <= 50
    existing = [m for m in members if r.exists(store._answer_prefix + m)]
    assert len(existing) == len(members)
    assert int(r.get(store._answer_bytes)) == sum(r.strlen(store._answer_prefix + m) for m in existing)
    assert sorted(r.hkeys(store._answer_sizes)) == sorted(members)
    for s in stores:
        s.close()


def test_unreachable_redis_answer_calls_are_store_errors():
    import redis
    from .redis_server import free_port
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    for call in (lambda: store.get_answers([akey()]), lambda: store.put_answers([(akey(), answer())]),
                 lambda: store.clear_answers(), lambda: store.clear_answers("svc", ART),
                 lambda: store.get_with_answers("r1", [akey()])):
        with pytest.raises(StoreError, match="Redis store") as exc:
            call()
        assert isinstance(exc.value.__cause__, redis.RedisError)
    store.close()


def test_closed_sqlite_answer_calls_are_store_errors(tmp_path):
    store = SQLiteStore(str(tmp_path / "closed.sqlite3"))
    store.close()
    for call in (lambda: store.get_answers([akey()]), lambda: store.put_answers([(akey(), answer())]),
                 lambda: store.clear_answers(), lambda: store.get_with_answers("r1", [akey()])):
        with pytest.raises(StoreError):
            call()


def test_open_store_passes_the_answer_cache_bounds(tmp_path):
    from rc_cts.config.settings import settings_from_opts
    from rc_cts.store import open_store
    opts = {"answer_cache_size": "7", "answer_cache_max_mb": "0.5", "sqlite_path": str(tmp_path / "o.sqlite3")}
    for kind in ("memory", "sqlite"):
        settings = settings_from_opts({"custom_threat_service": dict(opts, store=kind)})
        assert (settings.answer_cache_size, settings.answer_cache_max_bytes) == (7, 512 * 1024)
        store = open_store(settings)
        assert (store.answers_max_entries, store.answers_max_bytes) == (7, 512 * 1024)
        store.close()
    defaults = settings_from_opts({})
    assert (defaults.answer_cache_size, defaults.answer_cache_max_bytes) == (100000, 256 * 1024 * 1024)


def test_redis_get_with_answers_is_one_round_trip(redis_server, redis_prefix):
    store = RedisStore(redis_server.url, prefix=redis_prefix)
    store.put(record(complete=True))
    store.put_answers([(akey(f"S{i}"), answer()) for i in range(3)])

    def calls():
        stats = store._redis.info("commandstats")
        return {name: v["calls"] for name, v in stats.items() if name != "cmdstat_info"}
    before = calls()
    rec, answers = store.get_with_answers("r1", [akey(f"S{i}") for i in range(4)])
    after = calls()
    assert rec.id == "r1" and len(answers) == 3
    assert {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)} == {"cmdstat_mget": 1}
    store.close()
