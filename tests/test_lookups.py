"""End to end through a real server on a free port: lookups as the platform makes them."""
import threading
import time

from circuits import Event

from rc_cts import searcher_channel
from rc_cts.testing import hit_props

from .searchers import (CatchAllSearcher, FailingSearcher, FindingSearcher, HitSearcher,
                        IncompleteSearcher, LegacyNamedSearcher, NamedHelperSearcher, SleepSearcher)



def test_hit_answers_at_once_with_typed_props(start_service):
    c = start_service([HitSearcher()]).client()
    r = c.post("test", {"type": "net.uri", "value": "http://evil.example/x"})
    assert r.status == 200
    [hit] = r.json["hits"]
    assert hit_props(hit)["Seen"] == {"type": "string", "name": "Seen", "value": "http://evil.example/x"}
    assert hit_props(hit)["Score"]["value"] == 7 and hit_props(hit)["Score"]["type"] == "number"
    assert r.headers["content-type"] == "application/json"


def test_no_hit_and_unhandled_type_answer_empty(start_service):
    c = start_service([HitSearcher()]).client()
    for artifact in ({"type": "net.ip", "value": "10.1.1.1"}, {"type": "net.name", "value": "a.b"}):
        r = c.post("test", artifact)
        assert r.status == 200 and r.json["hits"] == [] and r.json["id"]


def test_json_post_is_accepted_like_multipart(start_service):
    c = start_service([HitSearcher()]).client()
    a = c.post("test", {"type": "net.uri", "value": "http://a"}, as_json=True)
    b = c.post("test", {"type": "net.uri", "value": "http://a"})
    assert a.status == b.status == 200 and a.json == b.json


def test_options_reports_upload_file(start_service):
    svc = start_service([HitSearcher()], upload_file="true")
    assert svc.client().options("test").json == {"upload_file": True}
    svc2 = start_service([HitSearcher()])
    r = svc2.client().options("test")
    assert r.status == 200 and r.json == {"upload_file": False}


def test_pending_then_complete(start_service):
    svc = start_service([SleepSearcher()], sync_wait_secs=0.1, first_retry_secs=5, later_retry_secs=60)
    c = svc.client()
    r = c.post("slow", {"type": "net.name", "value": "sleep:0.8"})
    assert r.status == 303
    assert r.json["retry_secs"] == 5 and r.json["hits"] == []
    rid = r.json["id"]
    assert "location" not in r.headers  # the id and retry_secs are the protocol; clients follow a Location at once
    g = c.get("slow", rid)
    assert g.status == 303 and g.json["id"] == rid and g.json["retry_secs"] == 60
    deadline = time.time() + 10
    while g.status == 303 and time.time() < deadline:
        time.sleep(0.05)
        g = c.get("slow", rid)
    assert g.status == 200
    assert hit_props(g.json["hits"][0])["Slept"]["value"] == "0.8"


def test_get_waits_for_a_result_due_within_sync_wait(start_service):
    svc = start_service([SleepSearcher()], sync_wait_secs=0.5)
    c = svc.client()
    r = c.post("slow", {"type": "net.name", "value": "sleep:0.7"})
    assert r.status == 303
    g = c.get("slow", r.json["id"])  # lands 0.5s later, before the searcher's 0.7s is up + 0.5s
    assert g.status == 200 and g.json["hits"]


def test_rescan_is_served_from_the_store(start_service):
    finder = FindingSearcher()
    calls = []
    original = finder.find

    svc = start_service([finder])
    c = svc.client()
    a = c.post("mixed", {"type": "net.uri", "value": "http://same"})
    b = c.post("mixed", {"type": "net.uri", "value": "http://same"})
    other = c.post("mixed", {"type": "net.uri", "value": "http://other"})
    assert a.status == b.status == 200
    assert a.json["id"] == b.json["id"] != other.json["id"]
    assert a.json["hits"] == b.json["hits"]
    record = svc.service.store.get(a.json["id"])
    assert record.complete and len(record.hits) == 3
    del calls, original


def test_identical_concurrent_lookups_run_the_searcher_once(start_service):
    searcher = IncompleteSearcher()
    svc = start_service([searcher], sync_wait_secs=2)
    c = svc.client()
    results = []
    threads = [threading.Thread(target=lambda: results.append(c.post("flaky", {"type": "net.port", "value": 0})))
               for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [r.status for r in results] == [200] * 8
    assert len({r.json["id"] for r in results}) == 1
    assert searcher.calls == {0: 1}


def test_failing_searcher_leaves_the_lookup_incomplete_and_others_hits_are_shown(start_service, caplog):
    caplog.set_level("DEBUG", logger="rc_cts.lookups.calls")
    c = start_service([FailingSearcher(), FindingSearcher()], max_retries=3,
                      incomplete_retry_secs=0.05).client()
    r = c.post("mixed", {"type": "net.uri", "value": "http://x"})
    assert r.status == 303  # not cached as complete: the failed searcher is owed an answer
    assert [hit_props(h)["From"]["value"] for h in r.json["hits"]] == ["finder", "finder-list-1", "finder-list-2"]
    failure = [rec for rec in caplog.records if "FailingSearcher.fail failed" in rec.getMessage()]
    assert failure[0].levelname == "ERROR" and "RuntimeError at searchers.py" in failure[0].getMessage()
    assert "upstream exploded" not in failure[0].getMessage()  # a message may hold the value: at DEBUG
    detail = [rec for rec in caplog.records if rec.levelname == "DEBUG" and rec.exc_text]
    assert detail and "upstream exploded" in detail[0].exc_text
    assert "http://x" not in failure[0].getMessage()  # artifact values only at DEBUG
    r, polls = c.lookup("mixed", {"type": "net.uri", "value": "http://x"})
    assert r.status == 200 and polls <= 3
    assert [hit_props(h)["From"]["value"] for h in r.json["hits"]] == ["finder", "finder-list-1", "finder-list-2"]

def test_incomplete_searcher_is_run_again_until_it_answers(start_service):
    searcher = IncompleteSearcher()
    c = start_service([searcher], incomplete_retry_secs=0.05, sync_wait_secs=0.1).client()
    r, polls = c.lookup("flaky", {"type": "net.port", "value": 2})
    assert r.status == 200
    assert hit_props(r.json["hits"][0])["Calls"]["value"] == 3
    assert searcher.calls == {2: 3}


def test_incomplete_retries_are_bounded_and_spaced(start_service, caplog):
    searcher = IncompleteSearcher()
    c = start_service([searcher], incomplete_retry_secs=0.1, max_retries=2, sync_wait_secs=0).client()
    t0 = time.time()
    r, _ = c.lookup("flaky", {"type": "net.port", "value": 100})
    elapsed = time.time() - t0
    assert r.status == 200 and r.json["hits"] == []
    assert searcher.calls == {100: 3}          # the first call and max_retries more
    assert elapsed >= 0.2                      # spaced by incomplete_retry_secs, no busy loop
    assert any("giving up" in rec.getMessage() for rec in caplog.records)


def test_a_lookup_never_stays_pending_forever(start_service, caplog):
    c = start_service([SleepSearcher()], lookup_timeout_secs=0.3, sync_wait_secs=2, max_retries=2,
                      incomplete_retry_secs=0.05).client()
    t0 = time.time()
    r = c.post("slow", {"type": "net.name", "value": "sleep:3"})
    assert r.status == 303 and r.json["hits"] == []  # timed out: incomplete, not complete and empty
    assert time.time() - t0 < 2
    assert any("timed out" in rec.getMessage() and "SleepSearcher.name" in rec.getMessage()
               for rec in caplog.records)
    polls = [c.get("slow", r.json["id"]).status for _ in range(2)]
    assert polls[-1] == 200  # at most max_retries polls


def test_blocking_searchers_do_not_block_the_service(start_service):
    svc = start_service([SleepSearcher(), HitSearcher()], workers=16, sync_wait_secs=0.2)
    c = svc.client()
    results = []
    slow = [threading.Thread(target=lambda i=i: results.append(
        c.lookup("slow", {"type": "net.name", "value": f"sleep:1.{i}"})[0])) for i in range(10)]
    t0 = time.time()
    [t.start() for t in slow]
    time.sleep(0.3)
    # while ten searchers block for a second each, the service keeps answering at once
    t1 = time.time()
    assert c.options("slow").status == 200
    assert c.post("test", {"type": "net.uri", "value": "http://fast"}).status == 200
    assert time.time() - t1 < 0.5
    # and the ten ran side by side, not one after the other (10+ seconds)
    [t.join() for t in slow]
    assert [r.status for r in results] == [200] * 10
    assert time.time() - t0 < 5


def test_catch_all_handler_receives_only_lookup_events(start_service):
    searcher = CatchAllSearcher()
    svc = start_service([searcher])
    c = svc.client()
    assert hit_props(c.post("catchall", {"type": "net.ip", "value": "1.2.3.4"}).json["hits"][0])["Type"]["value"] == "net.ip"
    c.post("catchall", {"type": "email.body", "value": "hello"})
    time.sleep(0.3)  # circuits keeps firing its own events (generate_events, ...) meanwhile
    assert searcher.seen == [("ThreatServiceLookupEvent", "net.ip"),
                             ("ThreatServiceLookupEvent", "email.body")]


def test_original_lookup_method_naming(start_service):
    c = start_service([LegacyNamedSearcher()]).client()
    r = c.post("legacy", {"type": "net.uri", "value": "http://l"})
    assert hit_props(r.json["hits"][0])["Link"] == {"type": "uri", "name": "Link", "value": "http://l"}
    r = c.post("legacy", {"type": "email.header.sender_address", "value": "a@b.c"})
    assert hit_props(r.json["hits"][0])["Sender"]["value"] == "a@b.c"
    assert c.post("legacy", {"type": "net.ip", "value": "1.1.1.1"}).json["hits"] == []


def test_named_searcher_handler_still_gets_its_other_events(start_service):
    searcher = NamedHelperSearcher()
    svc = start_service([searcher])
    svc.root.fire(Event.create("ping"), searcher_channel("helper"))
    deadline = time.time() + 5
    while searcher.pings == 0 and time.time() < deadline:
        time.sleep(0.01)
    r = svc.client().post("helper", {"type": "net.uri", "value": "http://h"})
    assert hit_props(r.json["hits"][0])["Pings"]["value"] == "1"


def test_service_names_with_several_segments(start_service):
    class Deep(HitSearcher):
        channel = searcher_channel("team", "intel")
    c = start_service([Deep()]).client()
    r = c.post("team/intel", {"type": "net.uri", "value": "http://d"})
    assert r.status == 200 and r.json["hits"]
    assert c.get("team/intel", r.json["id"]).status == 200
    assert c.get("team", r.json["id"]).status == 404


def test_get_of_a_complete_result(start_service):
    c = start_service([HitSearcher()]).client()
    r = c.post("test", {"type": "net.uri", "value": "http://g"})
    g = c.get("test", r.json["id"])
    assert g.status == 200 and g.json == r.json


def test_searcher_registered_while_running_gets_only_lookups(start_service):
    svc = start_service([HitSearcher()])
    late = CatchAllSearcher()
    late.register(svc.root)  # as the resilient-circuits loader may do, with the loop running
    c = svc.client()
    deadline = time.time() + 5
    while c.options("catchall").status == 404 and time.time() < deadline:
        time.sleep(0.02)
    r = c.post("catchall", {"type": "net.ip", "value": "9.9.9.9"})
    assert r.status == 200 and r.json["hits"]
    assert late.seen == [("ThreatServiceLookupEvent", "net.ip")]


def test_a_handler_for_several_types_is_wrapped_once(start_service, caplog):
    import logging
    from circuits import BaseComponent, handler
    caplog.set_level(logging.INFO, logger="rc_cts.lookups.registry")
    from rc_cts import Hit, StringProp

    class Hashes(BaseComponent):
        channel = searcher_channel("hashes")

        @handler("hash.md5", "hash.sha1")
        def lookup(self, event, *args, **kwargs):
            return Hit(StringProp(name="Type", value=event.name))

    svc = start_service([Hashes()])
    c = svc.client()
    for kind in ("hash.md5", "hash.sha1"):
        assert hit_props(c.post("hashes", {"type": kind, "value": "ab"}).json["hits"][0])["Type"]["value"] == kind
    registry = svc.service.dispatcher.registry
    assert registry.handlers_for(searcher_channel("hashes"), "hash.md5") == \
        registry.handlers_for(searcher_channel("hashes"), "hash.sha1")
    assert len(registry.handlers_for(searcher_channel("hashes"), "hash.md5")) == 1
    assert sum("searcher Hashes.lookup on hashes" in r.getMessage() for r in caplog.records) == 1
