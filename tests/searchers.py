"""Searchers used by the tests, each showing one behaviour."""
import threading
import time

from circuits import BaseComponent, handler

from rc_cts import (Hit, NumberProp, StringProp, ThreatLookupIncompleteException,
                    ThreatServiceLookupEvent, UriProp, searcher_channel)


class HitSearcher(BaseComponent):
    """/test: a hit for net.uri, none for net.ip."""
    channel = searcher_channel("test")

    @handler("net.uri")
    def uri(self, event, *args, **kwargs):
        return Hit(StringProp(name="Seen", value=event.artifact["value"]), NumberProp(name="Score", value=7))

    @handler("net.ip")
    def ip(self, event, *args, **kwargs):
        return None


class SleepSearcher(BaseComponent):
    """/slow: blocks for the number of seconds in the artifact value (as a requests call would)."""
    channel = searcher_channel("slow")

    @handler("net.name")
    def name(self, event, *args, **kwargs):
        delay = float(event.artifact["value"].split(":")[1])
        time.sleep(delay)
        return Hit(StringProp(name="Slept", value=str(delay)))


class FailingSearcher(BaseComponent):
    """/mixed (with FindingSearcher): fails on every lookup."""
    channel = searcher_channel("mixed")

    @handler("net.uri")
    def fail(self, event, *args, **kwargs):
        raise RuntimeError("upstream exploded")


class FindingSearcher(BaseComponent):
    channel = searcher_channel("mixed")

    @handler("net.uri")
    def find(self, event, *args, **kwargs):
        yield Hit(StringProp(name="From", value="finder"))
        yield [Hit(StringProp(name="From", value="finder-list-1")),
               Hit(StringProp(name="From", value="finder-list-2"))]


class IncompleteSearcher(BaseComponent):
    """/flaky: incomplete for the first N calls per artifact (N = int(value)), then a hit."""
    channel = searcher_channel("flaky")

    def __init__(self, opts=None):
        super().__init__()
        self.calls = {}
        self.lock = threading.Lock()

    @handler("net.port")
    def port(self, event, *args, **kwargs):
        value = event.artifact["value"]
        with self.lock:
            self.calls[value] = self.calls.get(value, 0) + 1
            n = self.calls[value]
        if n <= int(value):
            raise ThreatLookupIncompleteException("not yet")
        return Hit(NumberProp(name="Calls", value=n))


class CatchAllSearcher(BaseComponent):
    """/catchall: an original-style catch-all handler that records what it receives."""
    channel = searcher_channel("catchall")

    def __init__(self, opts=None):
        super().__init__()
        self.seen = []

    @handler()
    def anything(self, event, *args, **kwargs):
        self.seen.append((type(event).__name__, event.name))
        if isinstance(event, ThreatServiceLookupEvent):
            return Hit(StringProp(name="Type", value=event.name))
        return None


class LegacyNamedSearcher(BaseComponent):
    """/legacy: the overview's ``_lookup_net_uri`` naming, with no @handler decorator."""
    channel = searcher_channel("legacy")

    def _lookup_net_uri(self, event, *args, **kwargs):
        yield [Hit(UriProp(name="Link", value=event.artifact["value"]))]

    def _lookup_email_header_sender_address(self, event, *args, **kwargs):
        return Hit(StringProp(name="Sender", value=event.artifact["value"]))


class NamedHelperSearcher(BaseComponent):
    """/helper: a named handler also gets ordinary (non-lookup) events on its channel, inline."""
    channel = searcher_channel("helper")

    def __init__(self, opts=None):
        super().__init__()
        self.pings = 0

    @handler("ping")
    def ping(self):
        self.pings += 1

    @handler("net.uri")
    def uri(self, event):
        return Hit(StringProp(name="Pings", value=str(self.pings)))
