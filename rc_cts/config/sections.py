"""The config sections rc-cts adds to an app.config (``resilient-circuits config -c/-u``, and
the top of ``app.config.sample``), written from the option table in ``Settings``: every
option with its default and its comment."""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from .settings import CTS_SECTION, RESILIENT_SECTION, WEB_SECTION, Settings, section_of


def _value(default: Any) -> str:
    return str(default).lower() if isinstance(default, bool) else str(default)


def section_text(section: str) -> str:
    """``[section]``, then each of its options as ``name = default`` (``#name = example`` for
    one with no default), below its comment."""
    lines = [f"[{section}]"]
    for f in fields(Settings):
        if section_of(f.name) != section:
            continue
        if f.metadata.get("help"):
            lines += [f"# {line}".rstrip() for line in f.metadata["help"].splitlines()]
        if f.default is None:
            lines.append(f"#{f.name} = {f.metadata.get('example') or ''}".rstrip())
        else:
            lines.append(f"{f.name} = {_value(f.default)}")
    return "\n".join(lines) + "\n"


WEBSERVER = section_text(WEB_SECTION)
CUSTOM_THREAT_SERVICE = section_text(CTS_SECTION)
# Not a configsection entry point: resilient-circuits writes [resilient] itself (with the same
# log options, less log_format); app.config.sample carries it for standalone `rc-cts run`.
RESILIENT = section_text(RESILIENT_SECTION)


def webserver_section() -> str:
    return WEBSERVER


def custom_threat_service_section() -> str:
    return CUSTOM_THREAT_SERVICE
