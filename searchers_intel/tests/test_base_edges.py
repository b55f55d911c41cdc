"""searchers_intel's base at its edges: a huge answer is refused unread, and a value the provider
refuses (400) is no hit and nothing the breaker counts."""
import pytest

from rc_cts.testing import SearcherFailed
from searchers_intel.virustotal import VirusTotalSearcher

SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


def test_a_huge_answer_is_not_read_into_memory_whole(cts_lookup, fake_api):
    fake_api.answer(f"/api/v3/files/{SHA256}", 200, b"x" * (64 * 1024 * 1024))  # 64 MB, not JSON
    opts = {"virustotal_searcher": {"url": fake_api.url + "/api/v3", "api_key": "k", "timeout_secs": "20"}}
    with pytest.raises(SearcherFailed) as failed:
        cts_lookup(VirusTotalSearcher, "hash.sha256", SHA256, opts=opts)
    # the whole 64 MB were buffered before the JSON parse was even tried
    assert "67108864 bytes" not in str(failed.value), str(failed.value)


def test_artifacts_the_provider_refuses_with_400_do_not_open_the_breaker(cts_service, fake_api):
    """VirusTotal answers 400 InvalidArgumentError for a value it does not take: a failure for the
    breaker.  Five such artifacts (an attacker's email can carry them) and VirusTotal is
    skipped for every lookup, good ones included, for the cool-down."""
    bad = {"error": {"code": "InvalidArgumentError", "message": "Domain is not valid"}}
    for n in range(5):
        fake_api.answer(f"/api/v3/domains/bad-{n}-.example", 400, bad)
    good = {"data": {"id": "evil.example", "type": "domain",
                     "attributes": {"last_analysis_stats": {"malicious": 3}}}}
    fake_api.answer("/api/v3/domains/evil.example", 200, good)
    opts = {"virustotal_searcher": {"url": fake_api.url + "/api/v3", "api_key": "k"},
            "custom_threat_service.virustotal": {"rate_limit": "100/second"}}  # a premium key
    svc = cts_service(VirusTotalSearcher(opts=opts), opts=opts)
    c = svc.client()
    for n in range(5):
        c.post("virustotal", {"type": "net.name", "value": f"bad-{n}-.example"})
    r = c.post("virustotal", {"type": "net.name", "value": "evil.example"})
    assert r.status == 200 and r.json["hits"], (r.status, r.json)
