"""The lookup event searchers receive, and the exceptions they raise: to be asked again later,
or to fail with a reason the log states plainly."""
from __future__ import annotations

from typing import Any, Optional

from circuits import Event

from .hits import searcher_channel


class ThreatLookupIncompleteException(Exception):
    """Raised by a searcher that has no full answer yet (a rate limit, a report still
    being built...): the lookup stays pending and the searcher is run again later."""


class LookupFailed(Exception):
    """Raised by a searcher whose provider refused or garbled the call for a reason the
    operator should read as is: a rejected API key, an answer that does not parse.  The
    call counts as failed (the lookup stays incomplete, and asked again later; the
    searcher's breaker counts it), and is logged as one ERROR line with this message and no
    traceback.  Keep artifact values out of the message: it is logged above DEBUG."""


class ThreatServiceLookupEvent(Event):
    """The event fired on ``searcher_channel(<service>)`` to look up one artifact.

    Its name is the artifact type (``net.uri`` ...), so ``@handler("net.uri")``
    selects it.  ``artifact`` is the ThreatServiceArtifactDTO dict;
    ``file`` is the uploaded artifact file, or ``None``.
    """

    def __init__(self, request_id: Optional[str] = None, name: str = "unknown",
                 artifact: Optional[dict] = None, channel: str = searcher_channel(),
                 file: Any = None):
        super().__init__()
        self.name = name
        self.channels = (channel,)
        self.request_id = request_id
        self.cts_channel = channel
        self.artifact = artifact
        self.file = file

    def __repr__(self) -> str:
        return f"<{self.name}[{self.cts_channel}] ({self.request_id})>"
