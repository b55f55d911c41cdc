"""Every searcher in its own bulkhead, through a real server: a slow or stuck searcher only
uses up its own threads and queue, limits come from the class and from app.config, a full
queue defers (never drops), a call past its timeout frees its slot and leaves the lookup
incomplete, and ``async def`` handlers run on one asyncio loop."""
import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from circuits import BaseComponent, handler

from rc_cts import Hit, NumberProp, StringProp, searcher_channel
from rc_cts.config import read_config_file
from rc_cts.runner import start_in_thread
from rc_cts.testing import hit_values

from .searchers import HitSearcher


class Gauge(BaseComponent):
    """/gauge: net.name "label:secs" sleeps secs; records calls and the most at once."""
    channel = searcher_channel("gauge")

    def __init__(self, opts=None):
        super().__init__()
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.calls = {}

    @handler("net.name")
    def name(self, event, *args, **kwargs):
        label, secs = event.artifact["value"].split(":")
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.calls[label] = self.calls.get(label, 0) + 1
            first = self.calls[label] == 1
        try:
            time.sleep(float(secs) if first or not label.startswith("once") else 0)
        finally:
            with self.lock:
                self.now -= 1
        return Hit(StringProp(name="Label", value=label))


def opts_with(config_text, tmp_path):
    """Options read from an app.config file, as ``rc-cts run -c`` reads them."""
    path = tmp_path / "app.config"
    path.write_text("[webserver]\nserver = 127.0.0.1\nport = 0\n" + config_text)
    return read_config_file(str(path))


def poll_labels(client, service, ids, seconds=10):
    """GET each id until all answer 200; the Label of each one's hit."""
    labels = {}
    deadline = time.time() + seconds
    while len(labels) < len(ids) and time.time() < deadline:
        for rid in set(ids) - set(labels):
            r = client.get(service, rid)
            if r.status == 200:
                labels[rid] = hit_values(r.json["hits"][0])["Label"]
        time.sleep(0.05)
    return list(labels.values())


def test_a_quick_service_answers_at_once_while_a_slow_one_is_saturated(start_service):
    gauge = Gauge()
    svc = start_service([gauge, HitSearcher()])  # default settings
    c = svc.client()
    with ThreadPoolExecutor(48) as pool:
        slow = [pool.submit(c.post, "gauge", {"type": "net.name", "value": f"s{i}:3"}) for i in range(48)]
        time.sleep(0.5)  # the slow searcher now runs 32 calls and queues 16
        t0 = time.perf_counter()
        r = c.post("test", {"type": "net.uri", "value": "http://quick"})
        elapsed = time.perf_counter() - t0
        assert r.status == 200 and r.json["hits"] and elapsed < 0.5
        bulkhead = svc.service.dispatcher.registry.handlers_for(searcher_channel("gauge"), "net.name")[0].searcher.bulkhead
        assert bulkhead.in_flight == 32 and bulkhead.queued == 16
        assert {f.result().status for f in slow} == {303}
    assert gauge.most == 32


def test_limits_from_the_class_and_per_service_from_app_config(tmp_path):
    class Declared(Gauge):
        channel = searcher_channel("declared")
        max_concurrency = 3

    a, b = Gauge(), Declared()
    opts = opts_with("[custom_threat_service]\nsync_wait_secs = 0\n"
                     "[custom_threat_service.gauge]\nmax_concurrency = 2\n", tmp_path)
    with start_in_thread(opts, [a, b]) as svc:
        c = svc.client()
        for service in ("gauge", "declared"):
            for i in range(8):
                assert c.post(service, {"type": "net.name", "value": f"{service}{i}:0.3"}).status == 303
        deadline = time.time() + 10
        while (sum(a.calls.values()), sum(b.calls.values())) != (8, 8) and time.time() < deadline:
            time.sleep(0.05)
    assert (a.most, b.most) == (2, 3)


def test_a_full_queue_defers_lookups_and_drops_none(tmp_path):
    gauge = Gauge()
    opts = opts_with("[custom_threat_service]\nsync_wait_secs = 0\n"
                     "[custom_threat_service.gauge]\nmax_concurrency = 1\nmax_queue = 1\n", tmp_path)
    with start_in_thread(opts, [gauge]) as svc:
        c = svc.client()
        ids = [c.post("gauge", {"type": "net.name", "value": f"q{i}:0.3"}).json["id"] for i in range(4)]
        bulkhead = svc.service.dispatcher.registry.searchers()[0].bulkhead
        assert bulkhead.stats.deferred >= 1  # two of them found the queue full: pending, not dropped
        assert all(c.get("gauge", rid).status == 303 for rid in ids[2:])
        labels = poll_labels(c, "gauge", ids)
    assert sorted(labels) == ["q0", "q1", "q2", "q3"]
    assert gauge.most == 1


def test_a_call_past_its_timeout_frees_its_slot_and_leaves_the_lookup_incomplete(tmp_path):
    gauge = Gauge()
    opts = opts_with("[custom_threat_service]\nsync_wait_secs = 1\nincomplete_retry_secs = 0.05\n"
                     "[custom_threat_service.gauge]\nmax_concurrency = 1\ncall_timeout_secs = 0.3\n", tmp_path)
    with start_in_thread(opts, [gauge]) as svc:
        c = svc.client()
        stuck = {"type": "net.name", "value": "once-stuck:3"}  # its first call hangs for 3 s
        r = c.post("gauge", stuck)
        assert r.status == 303 and r.json["hits"] == []      # timed out: incomplete, not complete-empty
        t0 = time.perf_counter()
        other = c.post("gauge", {"type": "net.name", "value": "other:0"})
        assert other.status == 200 and time.perf_counter() - t0 < 0.5  # the stuck thread holds no slot
        bulkhead = svc.service.dispatcher.registry.searchers()[0].bulkhead
        assert bulkhead.stats.timed_out == 1 and bulkhead.abandoned == 1
        time.sleep(0.1)                                      # past the backoff (incomplete_retry_secs)
        again = c.post("gauge", stuck)                       # the rescan runs the searcher again
        assert again.status == 200 and hit_values(again.json["hits"][0])["Label"] == "once-stuck"
        assert gauge.calls["once-stuck"] == 2


class AsyncSleeper(BaseComponent):
    """/async: an ``async def`` handler that waits 0.2 s, as an awaited HTTP call would."""
    channel = searcher_channel("async")

    def __init__(self, opts=None):
        super().__init__()
        self.threads = set()

    @handler("net.ip")
    async def ip(self, event, *args, **kwargs):
        self.threads.add(threading.current_thread().name)
        await asyncio.sleep(0.2)
        return Hit(NumberProp(name="Octet", value=int(event.artifact["value"].split(".")[-1])))

    @handler("net.name")
    async def name(self, event, *args, **kwargs):  # an async generator: hits are yielded
        yield Hit(StringProp(name="Name", value=event.artifact["value"]))
        await asyncio.sleep(0)
        yield [Hit(StringProp(name="Again", value=event.artifact["value"]))]


def test_async_searchers_share_one_loop_and_hold_many_calls_without_threads(start_service):
    searcher = AsyncSleeper()
    svc = start_service([searcher], workers=4, sync_wait_secs=5)  # async calls are limited too
    c = svc.client()
    before = threading.active_count()
    with ThreadPoolExecutor(40) as pool:
        t0 = time.perf_counter()
        answers = list(pool.map(lambda i: c.post("async", {"type": "net.ip", "value": f"192.0.2.{i}"}), range(40)))
        elapsed = time.perf_counter() - t0
    assert [hit_values(r.json["hits"][0])["Octet"] for r in answers] == list(range(40))
    assert elapsed < 3.5                           # 10 rounds of 4 at 0.2 s, not 40 x 0.2 s
    assert searcher.threads == {"rc-cts-async"}
    assert threading.active_count() - before < 45  # the client's 40 threads, and one loop
    r = c.post("async", {"type": "net.name", "value": "a.example"})
    assert [list(hit_values(h)) for h in r.json["hits"]] == [["Name"], ["Again"]]


def test_a_spent_quota_defers_lookups_which_complete_later(tmp_path):
    class Limited(Gauge):
        channel = searcher_channel("limited")
        rate_limit = "2/second"

    searcher = Limited()
    opts = opts_with("[custom_threat_service]\nsync_wait_secs = 0\n", tmp_path)
    with start_in_thread(opts, [searcher]) as svc:
        c = svc.client()
        ids = [c.post("limited", {"type": "net.name", "value": f"r{i}:0"}).json["id"] for i in range(6)]
        time.sleep(0.2)
        assert sum(c.get("limited", rid).status == 303 for rid in ids) >= 3  # waiting for the quota
        labels = poll_labels(c, "limited", ids)
        bulkhead = svc.service.dispatcher.registry.searchers()[0].bulkhead
        assert bulkhead.stats.deferred >= 1 and bulkhead.stats.calls == 6
    assert sorted(labels) == [f"r{i}" for i in range(6)]


def test_rate_limits_read_as_apis_state_them():
    from rc_cts.lookups.quota import LocalQuota, Window, parse_rate_limit
    assert parse_rate_limit("4/minute") == [Window(4, 60)]
    assert parse_rate_limit("1,000 per day; 15000/month") == [Window(1000, 86400), Window(15000, 30 * 86400)]
    assert parse_rate_limit("10/second, 500/day") == [Window(10, 1), Window(500, 86400)]
    assert parse_rate_limit("3 per 2 seconds") == [Window(3, 2)]
    assert parse_rate_limit("") == []
    for bad in ("4/fortnight", "many/day", "0/second"):
        try:
            parse_rate_limit(bad)
        except ValueError as exc:
            assert bad.split("/")[0] in str(exc)
        else:
            raise AssertionError(bad)
    quota = LocalQuota(parse_rate_limit("2/second, 3/minute"))
    assert [quota.acquire(now=t) for t in (0.0, 0.1)] == [0.0, 0.0]
    from rc_cts.lookups.quota import margin_secs     # each window held a little longer
    assert quota.acquire(now=0.2) == pytest.approx(0.8 + margin_secs(1))  # wait for the first call to age out
    assert quota.acquire(now=1.1) == 0.0            # 3 in the minute now
    assert quota.acquire(now=1.5) == pytest.approx(58.5 + margin_secs(60))  # the minute is full until t=60


class InMemory(BaseComponent):
    """/memory: answers from memory, and says so (``blocking = False``); 192.0.2.9x sleep."""
    channel = searcher_channel("memory")
    blocking = False

    def __init__(self, opts=None):
        super().__init__()
        self.threads = []

    @handler("net.ip")
    def ip(self, event, *args, **kwargs):
        self.threads.append(threading.current_thread().name)
        if event.artifact["value"].startswith("192.0.2.9"):
            time.sleep(0.2)
        return Hit(StringProp(name="Thread", value=self.threads[-1]))


def test_a_non_blocking_searcher_is_called_in_the_loop_until_it_blocks(start_service, caplog):
    searcher = InMemory()
    c = start_service([searcher]).client()
    for i in range(3):
        assert c.post("memory", {"type": "net.ip", "value": f"192.0.2.{i}"}).status == 200
    assert c.post("memory", {"type": "net.ip", "value": "192.0.2.91"}).status == 200  # took 200 ms
    assert c.post("memory", {"type": "net.ip", "value": "192.0.2.3"}).status == 200   # a pause is forgiven
    for i in range(3):
        assert c.post("memory", {"type": "net.ip", "value": f"192.0.2.9{i + 2}"}).status == 200
    assert c.post("memory", {"type": "net.ip", "value": "192.0.2.5"}).status == 200
    loop_thread = searcher.threads[0]
    assert searcher.threads[:8] == [loop_thread] * 8 and not loop_thread.startswith("rc-cts-")
    assert searcher.threads[8].startswith("rc-cts-InMemory")   # moved to its threads for good
    assert any("declares blocking = False" in r.getMessage() for r in caplog.records)
