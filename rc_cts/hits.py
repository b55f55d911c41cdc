"""Hits and their typed properties: the ArtifactHitDTO / ArtifactPropertyDTO of the guide.

Hits are plain dicts so they serialise with ``json`` as they are, exactly like
the original ``rc_cts`` ones, which searchers written for it rely on.
"""
from __future__ import annotations

import logging
import numbers
from typing import Any, Iterable, Optional

LOG = logging.getLogger(__name__)

SEARCHER_CHANNEL_PREFIX = "cts_search."


def searcher_channel(*sub_urls: str) -> str:
    """The circuits channel searchers listen on for the service at ``<urlbase>/<sub>/<url>``."""
    return SEARCHER_CHANNEL_PREFIX + ".".join(sub_urls)


def is_searcher_channel(channel: Any) -> bool:
    return isinstance(channel, str) and channel.startswith(SEARCHER_CHANNEL_PREFIX)


def service_of(channel: str) -> str:
    """``searcher_channel("a", "b")`` -> ``"a/b"``: the service served at ``<urlbase>/a/b``."""
    return channel[len(SEARCHER_CHANNEL_PREFIX):].replace(".", "/")


class StringProp(dict):
    """A string property of a hit."""

    def __init__(self, name: Optional[str] = None, value: Any = None):
        super().__init__(type="string", name=name, value=value)


class UriProp(dict):
    """A URI property: the platform renders it as a link (use StringProp if it must not be clicked)."""

    def __init__(self, name: Optional[str] = None, value: Any = None):
        super().__init__(type="uri", name=name, value=value)


class IpProp(dict):
    """An IP-address property of a hit."""

    def __init__(self, name: Optional[str] = None, value: Any = None):
        super().__init__(type="ip", name=name, value=value)


def _as_number(value: Any) -> Any:
    """JSON numbers stay numbers; numeric strings (the original sent strings) become numbers."""
    if value is None or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        return value
    if isinstance(value, bool):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return float(text)  # raises ValueError for text that is no number


class NumberProp(dict):
    """A numeric property; its value is a JSON number, as the guide says.

    A value that is not a number at all is kept as a string property rather
    than lost, with a warning, so searchers written for the original (which
    accepted anything) keep working.
    """

    def __init__(self, name: Optional[str] = None, value: Any = None):
        try:
            super().__init__(type="number", name=name, value=_as_number(value))
        except (TypeError, ValueError, OverflowError):
            LOG.warning("NumberProp %r: %r is not a number; sent as a string", name, value)
            super().__init__(type="string", name=name, value=str(value))


class LatLngProp(dict):
    """A location property, ``{"lat": ..., "lng": ...}`` in degrees."""

    def __init__(self, name: Optional[str] = None, lat: Any = None, lng: Any = None):
        super().__init__(type="latlng", name=name,
                         value={"lat": _as_number(lat), "lng": _as_number(lng)})


class Hit(dict):
    """One hit: ``{"props": [...]}``.

    Properties whose value is ``None`` are left out (as in the original).
    Property names must be unique within a hit: a repeated name gets a
    `` (2)``, `` (3)`` ... suffix, so no data is lost and the DTO stays valid.
    """

    def __init__(self, *props: dict):
        super().__init__(props=[])
        for prop in props:
            self.append(prop)

    def append(self, prop: dict) -> None:
        """Add a property to the hit."""
        if prop.get("value") is None:
            return
        names = {p.get("name") for p in self["props"]}
        name = prop.get("name")
        if name in names:
            n = 2
            while f"{name} ({n})" in names:
                n += 1
            prop = dict(prop, name=f"{name} ({n})")
        self["props"].append(prop)

    def extend(self, props: Iterable[dict]) -> None:
        for prop in props:
            self.append(prop)
