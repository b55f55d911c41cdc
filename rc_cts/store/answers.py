"""One searcher's cached answer for one artifact: what the per-searcher result cache keeps.

A lookup's record holds the answer of every searcher of a service together; these are kept
apart, one per searcher, each with its own freshness, so that a rescan calls only the
searchers whose answers are missing or stale (after one provider's outage: one call, not nine).
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

LOG = logging.getLogger(__name__)


class AnswerKey(NamedTuple):
    """Where an answer is kept.  ``artifact`` is ``artifact_digest(...)``; ``searcher`` is the
    searcher's label and the fingerprint of its credentials and options (``Label@0123abcd``),
    so that a changed API key or base URL finds no entry."""
    service: str
    artifact: str
    searcher: str


@dataclass
class CachedAnswer:
    """A searcher's hits (none: a cached "no hit"), fresh for ``fresh_secs`` after ``stored_at``
    (wall clock, for replicas), then servable stale for ``stale_secs`` more while refreshed."""
    hits: List[dict] = field(default_factory=list)
    stored_at: float = field(default_factory=time.time)
    fresh_secs: float = 0.0
    stale_secs: float = 0.0

    @property
    def expires(self) -> float:
        """When no store may return it any more."""
        return self.stored_at + self.fresh_secs + self.stale_secs

    def age(self, now: Optional[float] = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.stored_at)

    def to_json(self) -> str:
        return json.dumps(vars(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "CachedAnswer":
        data: Dict[str, Any] = json.loads(text)
        return cls(hits=data.get("hits", []), stored_at=float(data.get("stored_at", 0)),
                   fresh_secs=float(data.get("fresh_secs", 0)), stale_secs=float(data.get("stale_secs", 0)))


def load_answer(text: Optional[str]) -> Optional[CachedAnswer]:
    """The answer in ``text``, or None if there is none or it is not one (corrupt, or written by
    something else): a store treats it as missing, so the searcher is asked again."""
    if not text:
        return None
    try:
        answer = CachedAnswer.from_json(text)
    except (ValueError, TypeError, AttributeError):
        return None
    return answer if isinstance(answer.hits, list) else None


def live_answers(found: Sequence[Tuple[AnswerKey, Optional[str]]], now: Optional[float] = None) \
        -> Dict[AnswerKey, CachedAnswer]:
    """What ``get_answers`` returns of the texts a store found: those that load and have not expired."""
    now = time.time() if now is None else now
    answers = {}
    for key, text in found:
        answer = load_answer(text)
        if answer is not None and answer.expires > now:
            answers[key] = answer
    return answers


class Entry(NamedTuple):
    """An answer as a store writes it: JSON text (never a pickle), and when it expires."""
    key: AnswerKey
    text: str
    expires: float


def prepare_entries(entries: Sequence[Tuple[AnswerKey, CachedAnswer]], max_bytes: int,
                    now: Optional[float] = None) -> Tuple[List[Entry], List[AnswerKey]]:
    """The entries of a ``put_answers`` to write (the last of each key), and the keys whose
    entry is not kept: already expired, or larger than the whole byte bound (logged by searcher:
    the artifact digest is no business of the log). The store removes what those replace."""
    now = time.time() if now is None else now
    keep: List[Entry] = []
    drop: List[AnswerKey] = []
    for key, answer in dict(entries).items():
        text = answer.to_json()
        if not answer.expires > now:
            drop.append(key)
        elif len(text) > max_bytes:
            drop.append(key)
            LOG.warning("searcher %s: its answer (%d bytes) is larger than the answer cache "
                        "(answer_cache_max_mb, %d bytes); not kept", key.searcher.split("@")[0],
                        len(text), max_bytes)
        else:
            keep.append(Entry(key, text, answer.expires))
    return keep, drop


def artifact_digest(artifact_type: str, value: Any, file_sha256: Optional[str] = None) -> str:
    """The artifact's part of an answer key: its type, value and file content, hashed (the
    value is never a key in the clear: keys are listed by operators' tools)."""
    text = json.dumps([artifact_type, value, file_sha256 or ""], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
