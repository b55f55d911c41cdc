"""``resilient-circuits selftest`` for rc-cts: the config is valid and searchers load."""
from __future__ import annotations

from typing import Any, Dict, Mapping

from . import plugins
from .config.settings import ConfigError, settings_from_opts


def selftest_function(opts: Mapping[str, Any]) -> Dict[str, str]:
    """``{"state": "success" | "failure", "reason": ...}`` as resilient-circuits expects."""
    try:
        settings = settings_from_opts(opts)
    except ConfigError as exc:
        return {"state": "failure", "reason": f"configuration error: {exc}"}
    classes, errors = plugins.discover()
    if errors:
        return {"state": "failure",
                "reason": "searchers that do not load: " + "; ".join(map(str, errors))}
    if not classes:
        return {"state": "failure", "reason": "no searcher packages are installed"}
    services = sorted({sc.service for sc in classes})
    return {"state": "success",
            "reason": f"{len(classes)} searchers serving {', '.join(services)} under "
                      f"{'https' if settings.secure else 'http'}://{settings.server}:{settings.port}"
                      f"{settings.urlbase}"}
