"""The async reputation searcher against the same local fake API (never the internet): its
calls are awaited on rc-cts's asyncio loop, and its quota is the framework's, not its own."""
import threading

import pytest

from rc_cts.testing import SearcherFailed
from searchers_example.async_reputation import AsyncReputationSearcher
from test_reputation import KEY, api, calls_to  # noqa: F401  (the fake API and its fixture)


def opts(api, **limits):
    options = {"async_reputation_searcher": {"url": f"http://127.0.0.1:{api.server_address[1]}/v1",
                                             "api_key": KEY, "timeout_secs": "0.5"}}
    if limits:
        options["custom_threat_service.reputation_async"] = {k: str(v) for k, v in limits.items()}
    return options


def test_hit_and_no_hit(cts_lookup, api):
    [hit] = cts_lookup(AsyncReputationSearcher, "net.ip", "192.0.2.1", opts=opts(api))
    assert [p["value"] for p in hit["props"]] == [87, "malicious", "botnet, c2", "https://rep.example/ip/192.0.2.1"]
    assert cts_lookup(AsyncReputationSearcher, "net.ip", "192.0.2.2", opts=opts(api)) == []
    assert cts_lookup(AsyncReputationSearcher, "net.name", "unknown.test", opts=opts(api)) == []


def test_a_busy_api_is_incomplete_and_asked_again(cts_lookup, api):
    assert cts_lookup(AsyncReputationSearcher, "net.ip", "192.0.2.4", opts=opts(api), max_retries=2) == []
    assert len(calls_to(api, "192.0.2.4")) == 3      # the first call and max_retries more


def test_a_rejected_key_is_an_error(cts_lookup, api):
    bad = opts(api)
    bad["async_reputation_searcher"]["api_key"] = "wrong"
    with pytest.raises(SearcherFailed, match="rejected the API key"):
        cts_lookup(AsyncReputationSearcher, "net.ip", "192.0.2.1", opts=bad)


def test_the_frameworks_quota_spaces_the_calls_and_no_thread_is_used(cts_service, api):
    options = opts(api, rate_limit="2/second")
    service = cts_service(AsyncReputationSearcher(options), opts=options, sync_wait_secs=10)
    c = service.client()
    threads = [threading.Thread(target=c.post, args=("reputation_async", {"type": "net.ip", "value": f"10.9.1.{i}"}))
               for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    times = sorted(t for _, t, _ in api.calls)
    assert len(times) == 6
    assert times[-1] - times[0] >= 1.9              # 6 calls at 2 per second: 2 s at least
    assert not [t for t in threading.enumerate() if t.name.startswith("rc-cts-AsyncReputation")]
