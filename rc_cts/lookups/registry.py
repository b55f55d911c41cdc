"""The searcher registry: which handler answers which artifact type on which service.

Searchers stay circuits components, written as the original asked, but lookups
do not travel through circuits' event loop.  When a searcher component joins the
tree, each of its lookup handlers is recorded here with the service (channel), the
artifact types it answers (or all of them), and the searcher's limits, and is
taken out of circuits' dispatch with ``removeHandler``.  A lookup then calls the
recorded handlers directly, each searcher in its own bulkhead.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, FrozenSet, Iterator, List, Mapping, Optional

from circuits import BaseComponent

from ..artifacts import LEGACY_PREFIX, is_artifact_type_name, legacy_method_name
from .bulkhead import Bulkhead
from .limits import LIMIT_KINDS, SearcherLimits, value_problem
from ..hits import is_searcher_channel, service_of
from .calls import is_async_handler

LOG = logging.getLogger(__name__)

MakeBulkhead = Callable[[str, SearcherLimits, str], Bulkhead]  # (label, limits, service)


@dataclass(eq=False)
class SearcherHandler:
    """One lookup handler of a searcher component."""
    label: str                        # "ClassName.method", unique on its service
    channel: str
    fn: Callable
    pass_event: bool
    types: Optional[FrozenSet[str]]   # None: a catch-all, for every artifact type
    legacy_name: Optional[str]        # `_lookup_net_uri` style method (no decorator)
    searcher: "Searcher"
    is_async: bool = False

    def matches(self, artifact_type: str) -> bool:
        if self.legacy_name is not None:
            return legacy_method_name(artifact_type) == self.legacy_name
        return self.types is None or artifact_type in self.types


@dataclass(eq=False)
class Searcher:
    """A searcher component, its handlers and its bulkhead."""
    component: BaseComponent
    bulkhead: Bulkhead
    handlers: List[SearcherHandler] = field(default_factory=list)
    service: str = ""   # the service its bulkhead is counted under (its own channel's)
    name: str = ""      # its class name, "#2"... for a second instance on the service: metric labels
    limits: SearcherLimits = field(default_factory=SearcherLimits)
    fingerprint: str = ""  # of its credentials and options: part of its cached answers' keys

    @property
    def services(self) -> List[str]:
        """Every service it has a handler on (usually just ``service``)."""
        return sorted({service_of(h.channel) for h in self.handlers})

    @property
    def wants_files(self) -> bool:
        return getattr(self.component, "upload_file", False) is True


class SearcherRegistry:
    """Searchers by service; ``adopt`` is called in the event loop thread or before it runs."""

    def __init__(self, make_bulkhead: MakeBulkhead, defaults: SearcherLimits,
                 overrides: Optional[Mapping[str, Mapping[str, Any]]] = None):
        self._make_bulkhead = make_bulkhead
        self._defaults = defaults
        self._overrides = overrides or {}
        self._adopted: Dict[int, Searcher] = {}
        self._by_channel: Dict[str, List[SearcherHandler]] = {}
        self._matching: Dict[tuple, List[SearcherHandler]] = {}  # (channel, type) -> handlers

    # -- queries -----------------------------------------------------------------------------
    def handlers_for(self, channel: str, artifact_type: str) -> List[SearcherHandler]:
        key = (channel, artifact_type)
        found = self._matching.get(key)
        if found is None:
            found = [h for h in self._by_channel.get(channel, ()) if h.matches(artifact_type)]
            if len(self._matching) < 10000:  # artifact types come from clients: bounded
                self._matching[key] = found
        return found

    def has_service(self, channel: str) -> bool:
        return channel in self._by_channel

    def wants_files(self, channel: str) -> bool:
        """Whether a searcher on the channel analyses files (``upload_file = True``)."""
        return any(h.searcher.wants_files for h in self._by_channel.get(channel, ()))

    def channels(self) -> List[str]:
        return sorted(self._by_channel)

    def searchers(self) -> List[Searcher]:
        return list(self._adopted.values())

    # -- adoption ----------------------------------------------------------------------------
    def adopt_tree(self, root: BaseComponent) -> List[Searcher]:
        """Adopt every searcher in the tree not adopted yet; returns the new ones."""
        return [s for s in (self.adopt(c) for c in _walk(root)) if s is not None]

    def adopt(self, component: BaseComponent) -> Optional[Searcher]:
        """Record the component's lookup handlers and take them out of circuits' dispatch.
        None if it has none, or was adopted already."""
        if id(component) in self._adopted:
            return None
        found = list(_lookup_handlers(component))
        if not found:
            return None
        own_channel = getattr(component, "channel", None)
        label = type(component).__name__
        main_channel: str = str(own_channel) if is_searcher_channel(own_channel) else found[0][1]
        limits = self._limits_for(component, main_channel)
        service = service_of(main_channel)
        same = sum(1 for s in self._adopted.values() if s.service == service and s.name.split("#")[0] == label)
        searcher = Searcher(component, self._make_bulkhead(label, limits, service), service=service,
                            name=f"{label}#{same + 1}" if same else label, limits=limits,
                            fingerprint=fingerprint(component))
        searcher.bulkhead.inline = getattr(component, "blocking", True) is False
        self._adopted[id(component)] = searcher
        for method, channel, names, legacy_name in found:
            types = None if not names and legacy_name is None else frozenset(names)
            handler = SearcherHandler(self._unique_label(channel, f"{label}.{method.__name__}"),
                                      channel, method, legacy_name is not None or bool(getattr(method, "event", False)),
                                      types, legacy_name, searcher, is_async_handler(method))
            searcher.handlers.append(handler)
            self._by_channel.setdefault(channel, []).append(handler)
            self._matching.clear()
            _take_out_of_circuits(component, method, names)
            LOG.info("searcher %s on %s for %s%s", handler.label, service_of(channel),
                     ", ".join(sorted(names)) or (legacy_name and legacy_name[len(LEGACY_PREFIX):])
                     or "every artifact type", " (async)" if handler.is_async else "")
        return searcher

    def _unique_label(self, channel: str, label: str) -> str:
        """Two instances of one class on a service: labels tell their answers apart."""
        same = sum(1 for h in self._by_channel.get(channel, ()) if h.label.split("#")[0] == label)
        return f"{label}#{same + 1}" if same else label

    def _limits_for(self, component: BaseComponent, channel: str) -> SearcherLimits:
        """Defaults, then the searcher's class attributes, then app.config's section for the
        service; a value that cannot be used is ignored (logged), the others still apply."""
        limits = self._defaults
        for source, values in (("class attribute of " + type(component).__name__,
                                {n: getattr(component, n) for n in LIMIT_KINDS if hasattr(component, n)}),
                               ("app.config", self._overrides.get(service_of(channel), {}))):
            usable = {}
            for name, value in values.items():  # each on its own first, then the rest together
                problem = _applied(self._defaults, {name: value}, alone=True)
                if problem:
                    LOG.error("searcher %s: %s %s = %r ignored: %s", type(component).__name__, source,
                              name, value, problem)
                else:
                    usable[name] = value
            together = _applied(limits, usable)
            if isinstance(together, SearcherLimits):
                limits = together
            elif usable:
                LOG.error("searcher %s: %s ignored: %s", type(component).__name__,
                          ", ".join(f"{n} = {v!r}" for n, v in usable.items()), together)
        return limits


def _applied(limits: SearcherLimits, values: Mapping[str, Any], alone: bool = False) -> Any:
    """``limits`` with ``values``, or why they cannot be used (a str).  ``alone``: only whether
    each value can be one of its kind ("" if so), not how it goes with the others."""
    try:
        candidate = limits.with_values(dict(values))
    except (TypeError, ValueError) as exc:
        return str(exc)
    if alone:
        return "; ".join(p for p in (value_problem(n, getattr(candidate, n)) for n in values) if p)
    problems = candidate.problems()
    return "; ".join(problems) if problems else candidate


def fingerprint(component: BaseComponent) -> str:
    """A digest of what the searcher's answers depend on besides the artifact: its class and
    what ``cache_fingerprint()`` returns if it has one, else its public settings: attributes
    holding a str, number or bool, and those items of a dict attribute (``self.options``; not
    ``self.opts``, the whole app.config).  A new API key or base URL gives a new digest, so
    cached answers made with the old one are not used.  Only the digest is kept: never a secret."""
    cls = type(component)
    custom = getattr(component, "cache_fingerprint", None)
    if callable(custom):
        material: Any = custom()
    else:
        material = {}
        for name, value in vars(component).items():
            if name.startswith("_") or name in NOT_SETTINGS:
                continue
            if _is_scalar(value):
                material[name] = value
            elif isinstance(value, Mapping):
                material[name] = {str(k): v for k, v in value.items() if _is_scalar(v)}
    text = json.dumps([f"{cls.__module__}.{cls.__qualname__}", material], sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


NOT_SETTINGS = frozenset({"channel", "root", "parent", "components", "opts"})  # circuits', and all of app.config


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _lookup_handlers(component: BaseComponent) -> Iterator[tuple]:
    """(method, channel, artifact type names, legacy name) for each lookup handler."""
    own_channel = getattr(component, "channel", None)
    seen = set()
    for name, member in inspect.getmembers(component):
        if not callable(member) or getattr(member, "__self__", None) is not component:
            continue
        func = getattr(member, "__func__", None)
        if func in seen:
            continue
        if getattr(member, "handler", False) is True:
            channel = member.channel if member.channel is not None else own_channel
            if not is_searcher_channel(channel):
                continue
            names = frozenset(n for n in member.names if is_artifact_type_name(n))
            if member.names and not names:
                continue  # an ordinary handler (ResilientComponent's `reload`...): circuits keeps it
            seen.add(func)
            yield member, channel, names, None
        elif name.startswith(LEGACY_PREFIX) and is_searcher_channel(own_channel):
            seen.add(func)
            yield member, own_channel, frozenset(), name


def _take_out_of_circuits(component: BaseComponent, method: Callable, names: FrozenSet[str]) -> None:
    """Lookup handlers get lookups only, called by the registry: a catch-all no longer sees
    circuits' own events, and a handler named for artifact types keeps its other names."""
    if not getattr(method, "handler", False):
        return  # a `_lookup_<type>` method was never a circuits handler
    for name in names or ("*",):
        try:
            component.removeHandler(method, name)
        except (KeyError, ValueError):
            pass  # not registered under that name (an inherited alias, removed already)


def _walk(component: BaseComponent) -> Iterator[BaseComponent]:
    stack = [component]
    while stack:
        comp = stack.pop()
        yield comp
        stack.extend(comp.components)
