"""Finding searchers: circuits components installed under the entry-point group
``resilient.circuits.components`` whose channel is a searcher channel.

One discovery path for the standalone runner and the tools; it uses
``importlib.metadata`` (``pkg_resources`` is gone from new setuptools).
"""
from __future__ import annotations

import inspect
import logging
import re
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

from .artifacts import ARTIFACT_TYPES, LEGACY_PREFIX, is_artifact_type_name, legacy_method_name
from .hits import SEARCHER_CHANNEL_PREFIX, service_of

LOG = logging.getLogger(__name__)

COMPONENTS_GROUP = "resilient.circuits.components"
LEGACY_HINT = ("it needs pkg_resources, which setuptools 82 and later no longer have; "
               "install the legacy extra: pip install 'rc-cts[legacy]'")


@dataclass
class LoadError:
    """A searcher package that could not be loaded; the others load regardless."""
    entry_point: str
    distribution: str
    message: str

    def __str__(self) -> str:
        return f"{self.entry_point} ({self.distribution}): {self.message}"


@dataclass
class SearcherClass:
    entry_point: str
    distribution: str
    cls: type

    version: str = ""

    @property
    def channel(self) -> str:
        return str(getattr(self.cls, "channel"))

    @property
    def service(self) -> str:
        """The service name: ``searcher_channel("a", "b")`` serves ``<urlbase>/a/b``."""
        return service_of(self.channel)

    def artifact_types(self) -> List[str]:
        """The artifact types its handlers select; ``["*"]`` for a catch-all handler."""
        types: Set[str] = set()
        for name, member in inspect.getmembers(self.cls, callable):
            if getattr(member, "handler", False):
                handler: Any = member  # a circuits handler: it has .channel and .names
                if handler.channel not in (None, self.channel):
                    continue
                if not handler.names:
                    return ["*"]
                types.update(n for n in handler.names if is_artifact_type_name(n))
            elif name.startswith(LEGACY_PREFIX):
                types.update(t for t in ARTIFACT_TYPES if legacy_method_name(t) == name)
        return sorted(types)


def is_searcher_class(cls: Any) -> bool:
    channel = getattr(cls, "channel", None)
    return isinstance(cls, type) and isinstance(channel, str) and channel.startswith(SEARCHER_CHANNEL_PREFIX)


def discover(group: str = COMPONENTS_GROUP) -> Tuple[List[SearcherClass], List[LoadError]]:
    """The installed searcher classes, and the entry points that failed to load."""
    found, errors = [], []
    for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        version = getattr(getattr(ep, "dist", None), "version", None) or ""
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not stop the others
            errors.append(LoadError(ep.name, dist, _explain(exc, dist)))
            LOG.debug("loading %s failed:\n%s", ep.name, traceback.format_exc())
            continue
        if is_searcher_class(cls):
            found.append(SearcherClass(ep.name, dist, cls, version))
    return found, errors


def _explain(exc: BaseException, distribution: str = "?") -> str:
    """The error, with the fix when it is a known one."""
    text = f"{type(exc).__name__}: {exc}"
    if "pkg_resources" in text or "declare_namespace" in text:
        return f"{text} ({LEGACY_HINT})"
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return (f"{text} (a module it imports is not installed: install the package that provides "
                f"{exc.name!r}, or reinstall {distribution} with its requirements)")
    return text


def instantiate(classes: List[SearcherClass], opts: Mapping[str, Any]) -> Tuple[list, List[LoadError]]:
    """Create each searcher with ``opts`` (as resilient-circuits does), reporting failures."""
    searchers, errors = [], []
    for sc in classes:
        try:
            searchers.append(sc.cls(opts=opts))
        except Exception as exc:
            errors.append(LoadError(sc.entry_point, sc.distribution, _explain(exc, sc.distribution)))
            LOG.debug("creating %s failed:\n%s", sc.entry_point, traceback.format_exc())
    return searchers, errors


CONFIG_SECTIONS_GROUP = "resilient.circuits.configsection"
_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")
_OPTION = re.compile(r"^#?([A-Za-z0-9_][A-Za-z0-9_.\-]*)\s*[=:]")


@dataclass
class DeclaredSection:
    """A section an installed package writes into app.config (``resilient-circuits config``):
    the options its text names, commented-out examples included."""
    name: str
    distribution: str
    options: Set[str]


def declared_sections(group: str = CONFIG_SECTIONS_GROUP) -> Dict[str, DeclaredSection]:
    """Every section the installed packages declare, by name; a package whose declaration
    does not load declares nothing (its searchers' load errors say why)."""
    sections: Dict[str, DeclaredSection] = {}
    for ep in metadata.entry_points(group=group):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        try:
            text = ep.load()()
        except Exception:
            LOG.debug("config section %s of %s did not load:\n%s", ep.name, dist, traceback.format_exc())
            continue
        for name, options in _parse_section_text(str(text)).items():
            sections.setdefault(name, DeclaredSection(name, dist, set())).options.update(options)
    return sections


def _parse_section_text(text: str) -> Dict[str, Set[str]]:
    """``{section: options}`` of an app.config fragment, counting ``#option = example`` lines."""
    found: Dict[str, Set[str]] = {}
    current: Optional[Set[str]] = None
    for line in text.splitlines():
        header = _SECTION.match(line)
        if header:
            current = found.setdefault(header.group(1).strip(), set())
        elif current is not None:
            option = _OPTION.match(line)
            if option:
                current.add(option.group(1).lower())
    return found
