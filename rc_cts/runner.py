"""Standalone mode: the threat service and the installed searchers in one circuits
Manager, with no SOAR server needed."""
from __future__ import annotations

import logging
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

from circuits import BaseComponent, Manager

from . import plugins
from .tools.client import Client
from .service import CustomThreatService

LOG = logging.getLogger(__name__)

# A ResilientComponent searcher reads the platform's fields over REST when it is created (it
# needs [resilient] host, email...), unless [resilient] says multitenancy: then it reads no
# platform and takes its function definitions from multi_org_function_json.
NO_SOAR = {"multitenancy": "true", "multi_org_function_json": "{}"}


def standalone_opts(opts: Mapping[str, Any]) -> Dict[str, Any]:
    """``opts`` for searchers run with no SOAR server configured (no [resilient] host): the
    mode in which ResilientComponent searchers are created without one. With a host, as is."""
    resilient = dict(opts.get("resilient") or {})
    if resilient.get("host") or opts.get("host"):
        return dict(opts)
    return {**opts, "resilient": {**NO_SOAR, **resilient}}


def build(opts: Mapping[str, Any], searchers: Optional[Iterable[BaseComponent]] = None,
          ) -> Tuple[Manager, CustomThreatService, List[plugins.LoadError]]:
    """The component tree: the service, plus ``searchers`` or else every installed searcher."""
    errors: List[plugins.LoadError] = []
    if searchers is None:
        _, searchers, errors = load_searchers(opts)
    root = Manager()
    service = CustomThreatService(opts).register(root)
    for searcher in searchers:
        service.dispatcher.registry.adopt_tree(searcher)  # before it joins: it never sees circuits' events
        searcher.register(root)
    for error in errors:
        LOG.error("searcher not loaded: %s", error)
    return root, service, errors


def load_searchers(opts: Mapping[str, Any]) -> Tuple[List[plugins.SearcherClass], List[BaseComponent],
                                                     List[plugins.LoadError]]:
    """Every installed searcher class, one instance of each made with ``opts``, and the
    packages that failed to load or to create (``rc-cts check`` and ``run`` report them)."""
    classes, errors = plugins.discover()
    searchers, create_errors = plugins.instantiate(classes, standalone_opts(opts))
    return classes, searchers, errors + create_errors


class RunningService:
    """A service running in a background thread of this process (tests, ``rc-cts lookup``)."""

    def __init__(self, root: Manager, service: CustomThreatService, errors: List[plugins.LoadError]):
        self.root = root
        self.service = service
        self.errors = errors
        self.url = service.url

    def client(self, **kwargs) -> Client:
        return Client(self.url, **kwargs)

    def stop(self) -> None:
        self.root.stop()
        self.root.join()

    def __enter__(self) -> "RunningService":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(opts: Mapping[str, Any], searchers: Optional[Iterable[BaseComponent]] = None
                    ) -> RunningService:
    """Build the service (see ``build``) and run it in a daemon thread; it listens at once."""
    root, service, errors = build(opts, searchers)
    root.start()
    return RunningService(root, service, errors)
