"""Settings from an ``app.config`` (the original's sections and option names), with defaults.

``opts`` is a dict of sections, as resilient-circuits gives every component,
so the same parsing serves the standalone runner and the daemon.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Mapping, Optional, get_type_hints

from ..lookups.bulkhead import LIMIT_KINDS, SearcherLimits
from ..lookups.quota import parse_rate_limit

STORES = ("memory", "sqlite", "redis")
WEB_SECTION = "webserver"
CTS_SECTION = "custom_threat_service"
DEFAULT_CONFIG_PATH = os.path.join("~", ".resilient", "app.config")

Opts = Dict[str, Dict[str, Any]]


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the option."""


@dataclass(frozen=True)
class Settings:
    # [webserver]
    server: str = "localhost"
    port: int = 9000
    secure: bool = False
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    # [custom_threat_service]: the original's options
    urlbase: str = "/cts"
    upload_file: bool = False
    first_retry_secs: float = 5
    later_retry_secs: float = 60
    max_retries: int = 60
    cache_size: int = 10000
    cache_ttl: float = 600
    auth_user: Optional[str] = None
    auth_password: Optional[str] = None
    # [custom_threat_service]: new options
    sync_wait_secs: float = 1.0
    workers: int = 32
    max_queue: int = 1000
    call_timeout_secs: float = 60
    max_body_mb: float = 10
    max_file_mb: float = 100
    upload_dir: Optional[str] = None
    incomplete_retry_secs: float = 5
    lookup_timeout_secs: float = 300
    idle_timeout_secs: float = 60
    request_timeout_secs: float = 120
    max_connections: int = 2000
    store: str = "memory"
    sqlite_path: str = "~/.resilient/rc-cts.sqlite3"
    redis_url: str = "redis://localhost:6379/0"
    redis_prefix: str = "rc_cts:"
    lease_secs: float = 30
    shutdown_grace_secs: float = 10
    # [custom_threat_service.<service>] sections: one service's searcher limits
    service_limits: Dict[str, Dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_user)

    @property
    def searcher_limits(self) -> SearcherLimits:
        """Every searcher's limits, unless its class or its service's section says otherwise."""
        return SearcherLimits(max_concurrency=self.workers, max_queue=self.max_queue,
                              call_timeout_secs=self.call_timeout_secs, max_abandoned=self.workers)

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


_KINDS = {name: (str if hint == Optional[str] else hint)
          for name, hint in get_type_hints(Settings).items() if name != "service_limits"}
_SECTION_OF = {f.name: WEB_SECTION for f in fields(Settings)
               if f.name in ("server", "port", "secure", "certfile", "keyfile")}
_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _resolve_env(value: str) -> Optional[str]:
    """``$NAME`` / ``${NAME}`` values come from the environment, so secrets stay out of files
    (resilient-circuits does the same for the daemon's config)."""
    m = _ENV_REF.match(value.strip())
    return os.environ.get(m.group(1)) if m else value


def _convert(name: str, value: Any, default: Any, kind: type) -> Any:
    if value is None:
        return default
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError(value)
        if kind is int:
            return int(str(value).strip())
        if kind is float:
            return float(str(value).strip())
        text = str(value).strip()
        return text or default
    except ValueError:
        raise ConfigError(f"option {name!r}: {value!r} is not a valid {kind.__name__}") from None


def settings_from_opts(opts: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Build validated Settings from config sections; unknown options are ignored."""
    values: Dict[str, Any] = {}
    for f in fields(Settings):
        if f.name in _KINDS:
            section = opts.get(_SECTION_OF.get(f.name, CTS_SECTION)) or {}
            values[f.name] = _convert(f.name, section.get(f.name), f.default, _KINDS[f.name])
    settings = Settings(**values, service_limits=service_limits_from_opts(opts))
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    positive = ("cache_size", "cache_ttl", "workers", "max_queue", "call_timeout_secs", "max_body_mb", "max_file_mb", "idle_timeout_secs",
                "request_timeout_secs", "lookup_timeout_secs", "max_connections", "lease_secs")
    for name in positive:
        if getattr(s, name) <= 0:
            raise ConfigError(f"option {name!r} must be greater than 0")
    for name in ("first_retry_secs", "later_retry_secs", "sync_wait_secs", "shutdown_grace_secs",
                 "incomplete_retry_secs", "max_retries"):
        if getattr(s, name) < 0:
            raise ConfigError(f"option {name!r} must not be negative")
    if not 0 <= s.port <= 65535:
        raise ConfigError("option 'port' must be between 0 and 65535")
    if s.secure and not s.certfile:
        raise ConfigError("option 'secure' needs 'certfile' (a PEM file with the certificate)")
    if s.auth_user and not s.auth_password:
        raise ConfigError("option 'auth_user' needs 'auth_password'")
    if s.store not in STORES:
        raise ConfigError(f"option 'store' must be one of {', '.join(STORES)}, not {s.store!r}")
    if s.upload_dir and not os.path.isdir(os.path.expanduser(s.upload_dir)):
        raise ConfigError(f"option 'upload_dir': {s.upload_dir!r} is not a directory")
    if not s.urlbase.startswith("/"):
        raise ConfigError("option 'urlbase' must start with '/'")


SERVICE_SECTION_PREFIX = CTS_SECTION + "."   # [custom_threat_service.<service>]: one service's limits


def service_limits_from_opts(opts: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Per-service searcher limits from ``[custom_threat_service.<service>]`` sections, which
    override what the searcher classes declare; ConfigError names a bad option."""
    overrides: Dict[str, Dict[str, Any]] = {}
    for section, values in opts.items():
        if not (isinstance(section, str) and section.startswith(SERVICE_SECTION_PREFIX)
                and isinstance(values, Mapping)):
            continue
        service = section[len(SERVICE_SECTION_PREFIX):].strip("/")
        limits: Dict[str, Any] = {}
        for name, value in values.items():
            kind = LIMIT_KINDS.get(name)
            if kind is None:
                raise ConfigError(f"[{section}] option {name!r} is not one of {', '.join(LIMIT_KINDS)}")
            limits[name] = _convert(f"[{section}] {name}", value, None, kind)
            if kind is str:
                try:
                    parse_rate_limit(limits[name])
                except ValueError as exc:
                    raise ConfigError(f"[{section}] option {name!r}: {exc}") from None
            elif not limits[name] > 0:
                raise ConfigError(f"[{section}] option {name!r} must be greater than 0")
        overrides[service] = limits
    return overrides


def find_config_file(path: Optional[str] = None) -> Optional[str]:
    """The config file to read: ``-c``, else ``$APP_CONFIG_FILE``, else
    ``~/.resilient/app.config`` if it exists (as resilient-circuits does);
    ``None`` means run on the embedded defaults."""
    if path:
        return path
    env = os.environ.get("APP_CONFIG_FILE")
    if env:
        return env
    default = os.path.expanduser(DEFAULT_CONFIG_PATH)
    return default if os.path.exists(default) else None


def read_config_file(path: str) -> Opts:
    """Read an app.config into ``{section: {option: value}}``, with the ``[resilient]``
    options also at the top level, as resilient-circuits gives them to components."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"config file {path!r}: {exc}") from None
    opts: Opts = {name: {k: _resolve_env(v) for k, v in parser.items(name)} for name in parser.sections()}
    return {**opts.get("resilient", {}), **opts}
