"""Searchers used by the tests, each showing one behaviour."""
import os
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


class FileSearcher(BaseComponent):
    """/files: declares that it analyses files; reports what it got in event.file."""
    channel = searcher_channel("files")
    upload_file = True

    def __init__(self, opts=None):
        super().__init__()
        self.paths = []

    @handler("file.content", "email")
    def content(self, event, *args, **kwargs):
        f = event.file
        if f is None:
            return Hit(StringProp(name="File", value="none"))
        path = f.path
        self.paths.append(path)
        with open(path, "rb") as fh:
            on_disk = fh.read()
        with f.open() as fh:
            head = fh.read(16)
        if event.artifact["value"] == "fail":
            raise RuntimeError("analysis failed")
        if event.artifact["value"].startswith("sleep:"):
            time.sleep(float(event.artifact["value"].split(":")[1]))
        return Hit(StringProp(name="Name", value=f.name), NumberProp(name="Size", value=f.size),
                   StringProp(name="SHA256", value=f.sha256), StringProp(name="Type", value=f.content_type),
                   StringProp(name="Head", value=head.decode("latin-1")),
                   NumberProp(name="On disk", value=len(on_disk)),
                   StringProp(name="Artifact", value=event.artifact["value"]))


class AlwaysFailingSearcher(BaseComponent):
    """/broken: raises on every call, and counts the calls."""
    channel = searcher_channel("broken")

    def __init__(self, opts=None):
        super().__init__()
        self.calls = 0

    @handler("net.ip")
    def ip(self, event, *args, **kwargs):
        self.calls += 1
        raise ConnectionError("provider unreachable")


class SampleAnalysisSearcher(BaseComponent):
    """/samples (with SampleNameSearcher): analyses the uploaded file (``upload_file = True``).
    file.content "label:secs" sleeps secs; each call is recorded in ``calls`` (and in
    [samples_searcher] log, for tests in other processes) with whether it had the file."""
    channel = searcher_channel("samples")
    upload_file = True

    def __init__(self, opts=None):
        super().__init__()
        self.log = (opts or {}).get("samples_searcher", {}).get("log")
        self.calls = []

    @handler("file.content")
    def analyse(self, event, *args, **kwargs):
        label, secs = event.artifact["value"].split(":")
        had = "file" if event.file is not None else "nofile"
        self.calls.append((label, had))
        if self.log:
            with open(self.log, "a") as fh:
                fh.write(f"{os.getpid()} {label} {had}\n")
        if event.file is None:
            return Hit(StringProp(name="Analysed", value="without the file"))
        time.sleep(float(secs))
        return Hit(StringProp(name="Analysed", value=label), NumberProp(name="Size", value=event.file.size))


class SampleNameSearcher(BaseComponent):
    """/samples: looks at the artifact only, never at the file."""
    channel = searcher_channel("samples")

    @handler("file.content")
    def name(self, event, *args, **kwargs):
        return Hit(StringProp(name="Sample", value=event.artifact["value"].split(":")[0]))


class BigHitSearcher(BaseComponent):
    """/big: for net.uri "<n>:<tag>", a hit with a string of n bytes."""
    channel = searcher_channel("big")

    @handler("net.uri")
    def uri(self, event, *args, **kwargs):
        size, _, tag = event.artifact["value"].partition(":")
        return Hit(StringProp(name="Blob", value="x" * int(size)), StringProp(name="Tag", value=tag))
