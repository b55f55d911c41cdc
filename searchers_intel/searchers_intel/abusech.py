"""What the three abuse.ch searchers (URLhaus, ThreatFox, MalwareBazaar) share: the
``Auth-Key`` header, and the ``query_status`` every abuse.ch answer carries.

Since 2025 every abuse.ch API call needs a free Auth-Key (https://auth.abuse.ch/), sent as the
``Auth-Key`` HTTP header; one key works for all three platforms, though each searcher reads its
own app.config section.  A call without one is answered 401, one with a key abuse.ch does not
know 403 with ``{"query_status": "unknown_auth_key"}``: ``IntelSearcher.request`` fails both
with "rejected the API key".

Every answer is HTTP 200 with a ``query_status``: ``ok`` (found), a "not found" value that
each API spells its own way (``no_results``, ``no_result``, ``hash_not_found``), values that
reject the artifact itself (``invalid_url``, ``illegal_hash``...: no hit, since asking again
cannot help), and for anything else the call fails, saying which status came back.
"""
from __future__ import annotations

import logging
import re
from typing import Any, ClassVar, Dict, FrozenSet, Optional

from rc_cts import LookupFailed

from .base import IntelSearcher, expect

LOG = logging.getLogger(__name__)

AUTH_HEADER = "Auth-Key"
AUTH_KEY_PAGE = "https://auth.abuse.ch/"
# A key refused in the body rather than by the HTTP status (user_blacklisted: MalwareBazaar's for a
# banned account): failed as a rejected key, not as a strange answer.
KEY_REJECTED: FrozenSet[str] = frozenset({"unknown_auth_key", "unauthorized", "missing_auth_key",
                                          "user_blacklisted"})
_STATUS_TEXT = re.compile(r"^[a-z0-9_]{1,40}$")


class AbuseChSearcher(IntelSearcher):
    """An abuse.ch API: ``Auth-Key`` header, POST requests, answers checked by ``query_status``.
    Subclasses name the statuses their API uses for "unknown" and for "not a valid artifact"."""

    key_header = AUTH_HEADER
    not_found_statuses: ClassVar[FrozenSet[str]] = frozenset()
    invalid_statuses: ClassVar[FrozenSet[str]] = frozenset()

    async def query(self, path: str, artifact_type: str, **kwargs: Any) -> Optional[Dict[str, Any]]:
        """The ``ok`` answer to a POST on ``path`` (``data=`` a form, or ``json=``), or None for
        an artifact the provider does not know or will not take.  ``artifact_type`` is only for
        logs: the artifact's value never is."""
        answer = expect(await self.request("POST", path, not_found=(), **kwargs), dict, "answer", self.provider)
        status = answer.get("query_status")
        if not isinstance(status, str):
            raise LookupFailed(f"{self.provider} answered without a query_status")
        if status == "ok":
            return answer
        if status in self.not_found_statuses:
            return None
        if status in self.invalid_statuses:
            LOG.info("%s would not take a %s value (query_status %s): no hit",
                     self.provider, artifact_type, status)
            return None
        if status in KEY_REJECTED:
            raise LookupFailed(f"{self.provider} rejected the Auth-Key (query_status {status}): check "
                               f"api_key in [{self.section}] (a free key: {AUTH_KEY_PAGE})")
        shown = status if _STATUS_TEXT.match(status) else "an unexpected value"
        raise LookupFailed(f"{self.provider} answered query_status {shown}")


def artifact_value(event: Any) -> str:
    """The looked-up artifact's value, trimmed; "" for none."""
    return str((getattr(event, "artifact", None) or {}).get("value") or "").strip()


def count(value: Any) -> Optional[int]:
    """A count abuse.ch sends as a string (``"url_count": "93"``) as a number; None if it is none."""
    try:
        return int(str(value).strip())
    except ValueError:
        return None

