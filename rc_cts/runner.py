"""Standalone mode: the threat service and the installed searchers in one circuits
Manager, with no SOAR server needed."""
from __future__ import annotations

import logging
from typing import Any, Iterable, List, Mapping, Optional, Tuple

from circuits import BaseComponent, Manager

from . import plugins
from .service import CustomThreatService

LOG = logging.getLogger(__name__)


def build(opts: Mapping[str, Any], searchers: Optional[Iterable[BaseComponent]] = None,
          ) -> Tuple[Manager, CustomThreatService, List[plugins.LoadError]]:
    """The component tree: the service, plus ``searchers`` or else every installed searcher."""
    errors: List[plugins.LoadError] = []
    if searchers is None:
        classes, errors = plugins.discover()
        searchers, create_errors = plugins.instantiate(classes, opts)
        errors += create_errors
    root = Manager()
    service = CustomThreatService(opts).register(root)
    for searcher in searchers:
        searcher.register(root)
    for error in errors:
        LOG.error("searcher not loaded: %s", error)
    return root, service, errors
