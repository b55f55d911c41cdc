"""The feed searcher, through a real service (the rc-cts pytest fixtures)."""
import os
import time

import pytest

from rc_cts.testing import hit_props
from searchers_example.feeds import FeedSearcher
from searchers_example.indicators import classify, load_feed

URLHAUS = '''################################################################
# abuse.ch URLhaus Database Dump (CSV)                         #
################################################################
#
# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter
"3000001","2026-11-20 10:00:00","http://evil.example/payload.exe","online","2026-11-20 10:00:00","malware_download","exe,AgentTesla","https://urlhaus.abuse.ch/url/3000001/","abuse_ch"
"3000002","2026-11-20 11:00:00","http://198.51.100.7/bins/mips","offline","","malware_download","elf,mirai","https://urlhaus.abuse.ch/url/3000002/","r3dbU7z"
'''
DROP = '''; Spamhaus DROP List 2026/11/20
; Last-Modified: Thu, 20 Nov 2026
1.10.16.0/20 ; SBL256894
2001:db8::/32 ; SBL000001
203.0.113.9
malware.test
44d88612fea8a8f36de82e1278abb02f
3395856ce81f2b7382dee72602f798b642f14140
275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f
phish@bad-sender.test
'''
CSV_WITH_HEADER = '''ioc,type,confidence
badhost.test,domain,90
'''


@pytest.fixture
def feeds(tmp_path):
    (tmp_path / "urlhaus.csv").write_text(URLHAUS)
    (tmp_path / "drop.txt").write_text(DROP)
    (tmp_path / "plain.csv").write_text(CSV_WITH_HEADER)
    return {"feed_searcher": {"feed.urlhaus": str(tmp_path / "urlhaus.csv"),
                              "feed.drop": str(tmp_path / "drop.txt"),
                              "feed.mine": str(tmp_path / "plain.csv"),
                              "reload_check_secs": "0"}}



def test_url_from_an_abuse_ch_csv(cts_lookup, feeds):
    [hit] = cts_lookup(FeedSearcher, "net.uri", "http://EVIL.example/payload.exe", opts=feeds)
    p = hit_props(hit)
    assert p["Feed"]["value"] == "urlhaus" and p["Indicator"]["value"] == "http://evil.example/payload.exe"
    assert p["threat"]["value"] == "malware_download" and p["tags"]["value"] == "exe,AgentTesla"
    assert p["urlhaus_link"] == {"type": "uri", "name": "urlhaus_link", "value": "https://urlhaus.abuse.ch/url/3000001/"}
    assert "url" not in p  # the indicator itself is not repeated, nor made clickable


def test_ip_in_a_cidr_range_and_exact(cts_lookup, feeds):
    [hit] = cts_lookup(FeedSearcher, "net.ip", "1.10.20.30", opts=feeds)
    assert hit_props(hit)["Match"]["value"] == "network 1.10.16.0/20 contains 1.10.20.30"
    assert hit_props(hit)["note"]["value"] == "SBL256894"
    [hit] = cts_lookup(FeedSearcher, "net.ip", "2001:db8::1", opts=feeds)
    assert hit_props(hit)["Indicator"]["value"] == "2001:db8::/32"
    [hit] = cts_lookup(FeedSearcher, "net.ip", "203.0.113.9", opts=feeds)
    assert hit_props(hit)["Match"]["value"] == "ip address"
    assert cts_lookup(FeedSearcher, "net.ip", "1.10.32.1", opts=feeds) == []
    assert cts_lookup(FeedSearcher, "net.ip", "not-an-ip", opts=feeds) == []


def test_cidr(cts_lookup, feeds):
    [hit] = cts_lookup(FeedSearcher, "net.cidr", "1.10.18.0/24", opts=feeds)
    assert hit_props(hit)["Match"]["value"] == "network 1.10.16.0/20 contains 1.10.18.0/24"
    [hit] = cts_lookup(FeedSearcher, "net.cidr", "1.10.16.0/20", opts=feeds)
    assert hit_props(hit)["Match"]["value"] == "same network"
    assert cts_lookup(FeedSearcher, "net.cidr", "1.10.0.0/16", opts=feeds) == []


def test_host_names_match_with_their_parent_domains(cts_lookup, feeds):
    [hit] = cts_lookup(FeedSearcher, "net.name", "a.b.Malware.test.", opts=feeds)
    assert hit_props(hit)["Match"]["value"] == "parent domain malware.test of a.b.malware.test"
    [hit] = cts_lookup(FeedSearcher, "net.name", "badhost.test", opts=feeds)
    assert hit_props(hit)["Feed"]["value"] == "mine" and hit_props(hit)["confidence"]["value"] == "90"
    assert cts_lookup(FeedSearcher, "net.name", "notmalware.test", opts=feeds) == []
    # a URL's host is matched too
    [hit] = cts_lookup(FeedSearcher, "net.uri", "https://cdn.malware.test/x?y=1", opts=feeds)
    assert hit_props(hit)["Indicator"]["value"] == "malware.test"


def test_hashes_and_sender_addresses(cts_lookup, feeds):
    for kind, value in (("hash.md5", "44D88612FEA8A8F36DE82E1278ABB02F"),
                        ("hash.sha1", "3395856ce81f2b7382dee72602f798b642f14140"),
                        ("hash.sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f")):
        [hit] = cts_lookup(FeedSearcher, kind, value, opts=feeds)
        assert hit_props(hit)["Indicator"]["value"] == value.lower()
    assert cts_lookup(FeedSearcher, "hash.md5", "0" * 32, opts=feeds) == []
    hits = cts_lookup(FeedSearcher, "email.header.sender_address", "Phish@Bad-Sender.test", opts=feeds)
    assert [hit_props(h)["Match"]["value"] for h in hits] == ["email address"]


def test_feeds_reload_when_they_change_and_keep_content_when_unreadable(cts_service, feeds, tmp_path):
    searcher = FeedSearcher(feeds)
    c = cts_service(searcher, opts=feeds).client()
    assert c.post("feeds", {"type": "net.name", "value": "new.test"}).json["hits"] == []
    path = tmp_path / "drop.txt"
    path.write_text(DROP + "new.test\n")
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert c.post("feeds", {"type": "net.name", "value": "www.new.test"}).json["hits"]
    path.unlink()
    assert c.post("feeds", {"type": "net.name", "value": "x.new.test"}).json["hits"]  # last good content


def test_classify():
    assert classify("10.0.0.1") == ("ip", "10.0.0.1")
    assert classify("10.0.0.1/8") == ("cidr", "10.0.0.0/8")
    assert classify("HTTP://Evil.Example/") == ("url", "http://evil.example")
    assert classify("Evil.Example.") == ("domain", "evil.example")
    assert classify("a" * 64) == ("sha256", "a" * 64)
    assert classify("x@y.z") == ("email", "x@y.z")
    for junk in ("", "hello", "10.0.0.1/99", "----"):
        assert classify(junk) is None


def test_unknown_lines_are_counted_not_indexed():
    feed, skipped = load_feed("f", "good.test\n!!!\n10.0.0.1\n")
    assert feed.count == 2 and skipped == 1
