"""Answers where the guide is silent, as the original rc-cts gives them, through a real server
and python-requests, as searcher authors' tests and the platform's HTTP client talk to it."""
import json
import logging
import time

import requests
from circuits import BaseComponent, handler

from rc_cts import Hit, StringProp, searcher_channel

from .redis_server import free_port
from .searchers import AlwaysFailingSearcher, HitSearcher, SleepSearcher


def access_lines(caplog, path_part):
    return [r for r in caplog.records if r.name == "rc_cts.access" and path_part in r.getMessage()]


def test_a_303_has_no_location_so_clients_wait_for_retry_secs(start_service, caplog):
    svc = start_service([SleepSearcher()], sync_wait_secs=0.1, first_retry_secs=1)
    caplog.set_level(logging.INFO, logger="rc_cts.access")
    r = requests.post(f"{svc.url}/slow", json.dumps({"type": "net.name", "value": "sleep:0.5"}))
    assert r.status_code == 303 and r.history == []  # python-requests did not follow it
    assert "Location" not in r.headers
    assert r.json()["retry_secs"] == 1 and r.json()["id"]
    time.sleep(0.8)  # the searcher is done by now, but the client still waits for retry_secs
    assert len(access_lines(caplog, "/cts/slow")) == 1
    time.sleep(0.2)
    g = requests.get(f"{svc.url}/slow/{r.json()['id']}")
    assert g.status_code == 200 and g.history == [] and g.json()["hits"]


def test_get_of_an_unknown_id_answers_200_with_no_hits_and_warns_once(start_service, caplog):
    svc = start_service([HitSearcher()])
    for _ in range(3):
        g = requests.get(f"{svc.url}/test/123")
        assert g.status_code == 200 and g.json() == {"id": "123", "hits": []}
    warnings = [r for r in caplog.records if "unknown or expired" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING and "'123'" in warnings[0].getMessage()
    # an id issued for another service is unknown to this one
    rid = requests.post(f"{svc.url}/test", json.dumps({"type": "net.uri", "value": "http://a"})).json()["id"]
    assert requests.get(f"{svc.url}/test/{rid}").json()["hits"]


def test_get_answers_503_when_the_store_cannot_answer(start_service):
    svc = start_service([HitSearcher()], store="redis", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    g = requests.get(f"{svc.url}/test/123")
    assert g.status_code == 503 and g.headers["Retry-After"] == "5" and "unavailable" in g.json()["error"]
    assert requests.options(f"{svc.url}/test").status_code == 200


def test_a_post_without_content_type_is_a_json_artifact(start_service):
    svc = start_service([HitSearcher()])
    r = requests.post(f"{svc.url}/test", json.dumps({"type": "net.uri", "value": "http://evil"}))
    assert r.request.headers.get("Content-Type") is None
    assert r.status_code == 200 and r.json()["hits"][0]["props"][0]["value"] == "http://evil"
    bad = requests.post(f"{svc.url}/test", '{"type": "net.uri"')
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]
    wrong = requests.post(f"{svc.url}/test", "type=net.uri", headers={"Content-Type": "text/plain"})
    assert wrong.status_code == 415 and "Content-Type" in wrong.json()["error"]


def platform_poll(url, artifact, max_polls=50):
    """The platform's loop: POST, then GET <id> after retry_secs while the answer is 303."""
    r = requests.post(url, json.dumps(artifact))
    polls = 0
    while r.status_code == 303 and polls < max_polls:
        time.sleep(min(float(r.json()["retry_secs"]), 5))
        r = requests.get(f"{url}/{r.json()['id']}")
        polls += 1
    return r, polls


def test_a_searcher_that_always_raises_ends_the_polls_and_runs_again_on_a_later_post(start_service, caplog):
    broken = AlwaysFailingSearcher()
    svc = start_service([broken], max_retries=4, sync_wait_secs=0.2, first_retry_secs=0.1,
                        later_retry_secs=0.1, incomplete_retry_secs=0.05)
    artifact = {"type": "net.ip", "value": "192.0.2.7"}
    r, polls = platform_poll(f"{svc.url}/broken", artifact)
    assert r.status_code == 200 and r.json()["hits"] == []
    assert 1 <= polls <= 4                     # the poll loop ends within max_retries polls
    assert 2 <= broken.calls <= 1 + 4          # retried on polls, a bounded number of times
    assert any("after 4 polls" in rec.getMessage() and "AlwaysFailingSearcher.ip" in rec.getMessage()
               for rec in caplog.records)
    # the failure was not cached as an answer: the next rescan's POST runs the searcher again
    calls = broken.calls
    time.sleep(1)  # past the backoff
    again = requests.post(f"{svc.url}/broken", json.dumps(artifact))
    assert again.status_code == 303 and broken.calls == calls + 1


def test_retries_of_a_failing_searcher_back_off(start_service):
    broken = AlwaysFailingSearcher()
    svc = start_service([broken], max_retries=1000, sync_wait_secs=0, incomplete_retry_secs=0.2)
    rid = requests.post(f"{svc.url}/broken", json.dumps({"type": "net.ip", "value": "192.0.2.8"})).json()["id"]
    t0 = time.time()
    while time.time() - t0 < 3:  # a client polling far faster than retry_secs
        assert requests.get(f"{svc.url}/broken/{rid}").status_code == 303
        time.sleep(0.02)
    # 0.2, 0.4, 0.8, 1.6 s apart: a handful of calls in 3 s, not one per poll (about 100)
    assert 2 <= broken.calls <= 5


class Counting(BaseComponent):
    """/pair: answers net.uri with one hit, or raises while ``fail`` is set."""
    channel = searcher_channel("pair")

    def __init__(self, label, fail=False):
        super().__init__()
        self.label, self.fail, self.calls = label, fail, 0

    @handler("net.uri")
    def uri(self, event, *args, **kwargs):
        self.calls += 1
        if self.fail:
            raise ConnectionError("down")
        return Hit(StringProp(name="From", value=self.label))


def test_a_failed_searcher_is_run_again_alone_on_top_of_the_others_hits(start_service):
    good, flaky = Counting("good"), Counting("flaky", fail=True)
    svc = start_service([good, flaky], sync_wait_secs=1, incomplete_retry_secs=0.05, max_retries=5)
    artifact = json.dumps({"type": "net.uri", "value": "http://y"})
    r = requests.post(f"{svc.url}/pair", artifact)
    assert r.status_code == 303 and [h["props"][0]["value"] for h in r.json()["hits"]] == ["good"]
    flaky.fail = False
    time.sleep(0.1)
    g = requests.get(f"{svc.url}/pair/{r.json()['id']}")
    assert g.status_code == 200
    assert sorted(h["props"][0]["value"] for h in g.json()["hits"]) == ["flaky", "good"]
    assert (good.calls, flaky.calls) == (1, 2)
    # now whole: a rescan is answered from the store
    assert requests.post(f"{svc.url}/pair", artifact).status_code == 200 and good.calls == 1
