"""Settings from an ``app.config`` (the original's sections and option names), with defaults.

``opts`` is a dict of sections, as resilient-circuits gives every component,
so the same parsing serves the standalone runner and the daemon.
"""
from __future__ import annotations

import configparser
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple, get_type_hints

from ..lookups.limits import LIMIT_KINDS, SearcherLimits, value_problem

STORES = ("memory", "sqlite", "redis")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("plain", "json")
MIN_LOG_BYTES = 100000  # resilient-circuits' floor for log_max_bytes (0 turns rotation off)
WEB_SECTION = "webserver"
CTS_SECTION = "custom_threat_service"
RESILIENT_SECTION = "resilient"
DEFAULT_CONFIG_PATH = os.path.join("~", ".resilient", "app.config")

Opts = Dict[str, Dict[str, Any]]


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the section and option."""

    def __init__(self, message: str, section: Optional[str] = None, option: Optional[str] = None):
        super().__init__(message)
        self.section = section
        self.option = option


def where(option: str, section: Optional[str] = None) -> str:
    """``[section] option 'name'``: how every message about an option starts."""
    section = section or section_of(option) or CTS_SECTION
    return f"[{section}] option {option!r}"


def option_error(option: str, text: str, section: Optional[str] = None) -> ConfigError:
    """A ConfigError for ``option``; ``text`` follows its location (": ..." or " must ...")."""
    section = section or section_of(option) or CTS_SECTION
    return ConfigError(where(option, section) + text, section, option)


def option(default: Any, help: str = "", example: Optional[str] = None) -> Any:
    """One option: its default, the comment written above it in app.config (for the options
    that follow too, until the next comment), and an example for options with no default."""
    return field(default=default, metadata={"help": help, "example": example})


@dataclass(frozen=True)
class Settings:
    """Every option, once: this table gives the parser its types and defaults, and
    ``config.sections`` (app.config.sample, ``resilient-circuits config``) its text."""
    # [webserver]
    server: str = option("localhost", "Interface to listen on (0.0.0.0 for all) and port (0 picks a free port and logs it).")
    port: int = option(9000)
    secure: bool = option(False, "HTTPS: certfile is a PEM file with the certificate (and the key, unless keyfile is set).")
    certfile: Optional[str] = option(None, example="/path/to/cert.pem")
    keyfile: Optional[str] = option(None, example="/path/to/key.pem")
    # [custom_threat_service]
    urlbase: str = option("/cts", 'Services are served at <urlbase>/<name>; <name> selects the searchers on searcher_channel("<name>").')
    upload_file: bool = option(False, """Answer OPTIONS with upload_file: true for every service, so the platform uploads artifact
files (services with a searcher that declares upload_file = True answer true anyway).""")
    first_retry_secs: float = option(5, "retry_secs sent with a 303: on the POST that starts a lookup, and on later GETs.")
    later_retry_secs: float = option(60)
    max_retries: int = option(60, """How many times a searcher that raised ThreatLookupIncompleteException is run again,
and how long to wait before each new run. A lookup left incomplete (a searcher failed, timed
out or stayed incomplete) answers 303 with the hits found so far; its missing searchers run
again on later GETs after a backoff (incomplete_retry_secs, doubling, at most 12 times that),
and the max_retries-th GET answers 200 with the hits found. The next POST runs them again.""")
    incomplete_retry_secs: float = option(5)
    cache_size: int = option(10000, """Lookups kept for GETs: at most cache_size, each for cache_ttl seconds (also the default
time a searcher's answer is reused).""")
    cache_ttl: float = option(600)
    cache_max_mb: float = option(256, """The memory store also keeps at most cache_max_mb of lookups, measured as their JSON (the least
recently used go first); a result larger than that is answered but not kept.""")
    answer_cache_size: int = option(100000, """Each searcher's answer is cached on its own, for the cache_ttl_secs its class or its
service's section gives (default cache_ttl; an answer with no hit: no_hit_ttl_secs, default
60, never longer than cache_ttl_secs), so that a rescan calls only the searchers whose answers are missing or stale. At most
answer_cache_size answers and answer_cache_max_mb of them, measured as their JSON (those that
expire soonest go first; in the memory store, the least recently used); an answer larger than
that is not kept. cache_provenance = true adds a prop "rc-cts cache" saying "cached, age N s"
to each hit answered from the cache.""")
    answer_cache_max_mb: float = option(256)
    cache_provenance: bool = option(False)
    auth_user: Optional[str] = option(None, "HTTP Basic authentication, when the service is registered with -user/-password (both or neither).",
                                      example="soar")
    auth_password: Optional[str] = option(None, example="$CTS_PASSWORD")
    metrics_token: Optional[str] = option(None, """GET /metrics (Prometheus) asks for Authorization: Bearer <metrics_token> when it is set, else the
auth_user credentials when those are set, else nothing. /healthz and /readyz never ask.""",
                                          example="$CTS_METRICS_TOKEN")
    admin_token: Optional[str] = option(None, """DELETE /admin/cache (clear cached answers; rc-cts cache clear --url) asks for Authorization:
Bearer <admin_token>, else the auth_user credentials; with neither set it is turned off.""",
                                        example="$CTS_ADMIN_TOKEN")
    sync_wait_secs: float = option(1.0, """A POST or GET waits up to this long for the lookup to complete and answers 200 with the hits;
after that it answers 303 and the platform polls. 0 gives the original rc-cts's first answer:
303 on the POST of every new lookup.""")
    workers: int = option(32, """Each searcher has its own bulkhead, so a slow or broken one never delays the others: at most
`workers` calls at once (its own threads; async handlers share one asyncio loop), at most
max_queue calls waiting (beyond that its lookups stay pending and the platform retries later),
and each call given up after call_timeout_secs (the lookup is then kept incomplete).
A searcher class may declare these itself: max_concurrency, max_queue, call_timeout_secs;
rate_limit ("10/second, 500/day": every window holds, lookups past one wait); its circuit
breaker (breaker_failures = 5 in a row, or breaker_failure_ratio = 0.5 of the last
breaker_window = 20 calls; breaker_cooldown_secs = 30, doubling to breaker_max_cooldown_secs
= 600); and its cache (cache_ttl_secs, no_hit_ttl_secs, stale_secs = 0). A section
[custom_threat_service.<service>] overrides them for one service, e.g.
  [custom_threat_service.example]
  max_concurrency = 4
  rate_limit = 4/minute, 500/day""")
    max_queue: int = option(1000)
    call_timeout_secs: float = option(60)
    lookup_timeout_secs: float = option(300, "A searcher still running this long after its lookup started leaves the lookup incomplete.")
    max_body_mb: float = option(10, "Largest request body accepted (413 above it), not counting an uploaded file's content.")
    max_file_mb: float = option(100, "Largest artifact file accepted (413 as soon as an upload passes it; nothing is kept).")
    upload_dir: Optional[str] = option(None, """Where uploaded files larger than 256 KiB are written while searchers use them
(default: the system's temporary directory), as rc-cts-<pid>-<random>.upload; each is removed
when its lookup is done, and a start removes those of processes no longer running (one host).""",
                                       example="/var/lib/rc-cts/uploads")
    idle_timeout_secs: float = option(60, """A connection with no traffic for idle_timeout_secs is closed; a TLS handshake and a request's
headers must arrive within header_timeout_secs, a whole request within request_timeout_secs
(408 otherwise).""")
    header_timeout_secs: float = option(10)
    request_timeout_secs: float = option(120)
    max_connections: int = option(2000, """Every socket counts, TLS ones before their handshake. At the limit the oldest connection
without a request in progress is closed to make room; if every one has a request in
progress, the new one gets 503.""")
    max_buffered_mb: float = option(64, """Request bytes held in memory by all connections together (uploaded files go to disk);
beyond it a request gets 503 and the client retries.""")
    store: str = option("memory", """Where results live: memory (this process only, lost on restart), sqlite (survives restarts,
one machine), or redis (shared by several rc-cts processes: replicas behind a load balancer).""")
    sqlite_path: str = option("~/.resilient/rc-cts.sqlite3")
    redis_url: str = option("redis://localhost:6379/0", """redis:// or rediss:// (TLS), with the password in the URL; keep it out of this file with
redis_url = $REDIS_URL (read from the environment).""")
    redis_prefix: str = option("rc_cts:")
    lease_secs: float = option(30, """A process running a lookup renews its lease every lease_secs/3; if it dies, another process
(or this one, restarted) takes the lookup over once the lease has expired.""")
    shutdown_grace_secs: float = option(10, """SIGTERM or SIGINT: stop accepting connections, cancel the calls still queued (their lookups
stay pending in a sqlite or redis store, for the next start or another replica), wait up to
shutdown_grace_secs for the calls running, then exit. A second signal exits at once.""")
    # [resilient]: resilient-circuits' log options, which standalone `rc-cts run` follows too
    loglevel: str = option("INFO", """Logging of standalone `rc-cts run`, with resilient-circuits' option names (under the
resilient-circuits daemon, its own logging applies). loglevel: DEBUG, INFO, WARNING or ERROR
(`rc-cts run --log-level` overrides it). INFO logs one line per request: for a lookup its id,
service, artifact type, outcome and duration; artifact values are logged at DEBUG only.""")
    log_format: str = option("plain", "plain, or json: one JSON object per line (time, level, logger, message, exc).")
    logdir: Optional[str] = option(None, """The log goes to stderr, and to <logdir>/<logfile> as well when either is set (logfile alone
may be a path; the defaults are the working directory and app.log; logdir is created if need
be). The file rotates at log_max_bytes, keeping log_backup_count older files (<logfile>.1,
.2...); either set to 0 never rotates it, as in resilient-circuits.""",
                                   example="/var/log/rc-cts")
    logfile: Optional[str] = option(None, example="app.log")
    log_max_bytes: int = option(10000000)
    log_backup_count: int = option(10)
    # [custom_threat_service.<service>] sections: one service's searcher limits
    service_limits: Dict[str, Dict[str, Any]] = field(default_factory=dict, compare=False)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_user)

    @property
    def searcher_limits(self) -> SearcherLimits:
        """Every searcher's limits, unless its class or its service's section says otherwise."""
        return SearcherLimits(max_concurrency=self.workers, max_queue=self.max_queue,
                              call_timeout_secs=self.call_timeout_secs, max_abandoned=self.workers,
                              cache_ttl_secs=self.cache_ttl, no_hit_ttl_secs=min(self.cache_ttl, 60.0))

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_buffered_bytes(self) -> int:
        return int(self.max_buffered_mb * 1024 * 1024)

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def cache_max_bytes(self) -> int:
        return int(self.cache_max_mb * 1024 * 1024)

    @property
    def answer_cache_max_bytes(self) -> int:
        return int(self.answer_cache_max_mb * 1024 * 1024)


_KINDS = {name: (str if hint == Optional[str] else hint)
          for name, hint in get_type_hints(Settings).items() if name != "service_limits"}
WEB_OPTIONS = ("server", "port", "secure", "certfile", "keyfile")
LOG_OPTIONS = ("loglevel", "log_format", "logdir", "logfile", "log_max_bytes", "log_backup_count")
SECRET_WORDS = ("password", "secret", "token", "key", "pass")


def section_of(name: str) -> Optional[str]:
    """The app.config section an option is read from (None: not an app.config option)."""
    if name not in _KINDS:
        return None
    if name in WEB_OPTIONS:
        return WEB_SECTION
    return RESILIENT_SECTION if name in LOG_OPTIONS else CTS_SECTION


def options_of(section: str) -> Tuple[str, ...]:
    """The option table's options read from ``section``."""
    return tuple(name for name in _KINDS if section_of(name) == section)


def shown(option: str, value: Any) -> str:
    """A value as messages show it: masked when the option's name says it is a secret."""
    return "'***'" if any(word in option.lower() for word in SECRET_WORDS) else repr(value)
_ENV_REF = re.compile(r"^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_reference(value: str) -> Optional[str]:
    """The variable a ``$NAME`` / ``${NAME}`` value names, or None for a plain value."""
    m = _ENV_REF.match(value.strip())
    return m.group(1) if m else None


def _resolve_env(value: str) -> Optional[str]:
    """``$NAME`` / ``${NAME}`` values come from the environment, so secrets stay out of files
    (resilient-circuits does the same for the daemon's config); None if it is unset, which
    ``rc-cts check`` and ``run`` report as an error."""
    name = env_reference(value)
    return os.environ.get(name) if name else value


def _convert(name: str, value: Any, default: Any, kind: type, section: Optional[str] = None) -> Any:
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
        raise option_error(name, f": {shown(name, value)} is not a valid {kind.__name__}", section) from None


def settings_from_opts(opts: Mapping[str, Mapping[str, Any]]) -> Settings:
    """Build validated Settings from config sections; unknown options are ignored.  Raises
    the first ConfigError; ``collect_settings`` gives them all."""
    settings, errors = collect_settings(opts)
    if errors:
        raise errors[0]
    return settings


def collect_settings(opts: Mapping[str, Mapping[str, Any]]) -> Tuple[Settings, List[ConfigError]]:
    """Settings and every ConfigError in ``opts``; an option with a bad value takes its default,
    so that the options after it are checked too."""
    values: Dict[str, Any] = {}
    errors: List[ConfigError] = []
    for f in fields(Settings):
        if f.name in _KINDS:
            section = opts.get(section_of(f.name) or CTS_SECTION) or {}
            try:
                values[f.name] = _convert(f.name, section.get(f.name), f.default, _KINDS[f.name])
            except ConfigError as exc:
                errors.append(exc)
                values[f.name] = f.default
    limits, limit_errors = collect_service_limits(opts)
    settings = Settings(**values, service_limits=limits)
    errors += limit_errors
    errors += _validate(settings)
    return settings, errors


_POSITIVE = ("cache_size", "cache_ttl", "cache_max_mb", "answer_cache_size", "answer_cache_max_mb", "workers",
             "max_queue", "call_timeout_secs", "max_body_mb", "max_file_mb", "idle_timeout_secs",
             "header_timeout_secs", "request_timeout_secs", "max_buffered_mb", "lookup_timeout_secs",
             "max_connections", "lease_secs")
_NOT_NEGATIVE = ("first_retry_secs", "later_retry_secs", "sync_wait_secs", "shutdown_grace_secs",
                 "incomplete_retry_secs", "max_retries", "log_backup_count")


def _validate(s: Settings) -> List[ConfigError]:
    errors = [option_error(name, " must be greater than 0") for name in _POSITIVE if getattr(s, name) <= 0]
    errors += [option_error(name, " must not be negative") for name in _NOT_NEGATIVE if getattr(s, name) < 0]
    if not 0 <= s.port <= 65535:
        errors.append(option_error("port", " must be between 0 and 65535"))
    if s.secure and not s.certfile:
        errors.append(option_error("secure", " needs 'certfile' (a PEM file with the certificate)"))
    if s.auth_user and not s.auth_password:
        errors.append(option_error("auth_user", " needs 'auth_password'"))
    if s.auth_password and not s.auth_user:  # else the service would run with no auth at all
        errors.append(option_error("auth_password", " needs 'auth_user'"))
    if s.store not in STORES:
        errors.append(option_error("store", f" must be one of {', '.join(STORES)}, not {s.store!r}"))
    if s.upload_dir and not os.path.isdir(os.path.expanduser(s.upload_dir)):
        errors.append(option_error("upload_dir", f": {s.upload_dir!r} is not a directory"))
    if not s.urlbase.startswith("/"):
        errors.append(option_error("urlbase", " must start with '/'"))
    return errors + _validate_logging(s)


def _validate_logging(s: Settings) -> List[ConfigError]:
    """resilient-circuits' rules for its log options, and rc-cts's log_format."""
    errors = []
    if s.loglevel.upper() not in LOG_LEVELS:
        errors.append(option_error("loglevel", f": {s.loglevel!r} is not one of {', '.join(LOG_LEVELS)}"))
    if s.log_format.lower() not in LOG_FORMATS:
        errors.append(option_error("log_format", f": {s.log_format!r} is not one of {', '.join(LOG_FORMATS)}"))
    if s.log_max_bytes != 0 and s.log_max_bytes < MIN_LOG_BYTES:
        errors.append(option_error("log_max_bytes", f" must be 0 (no rotation) or at least {MIN_LOG_BYTES}"))
    return errors


SERVICE_SECTION_PREFIX = CTS_SECTION + "."   # [custom_threat_service.<service>]: one service's limits


def service_limits_from_opts(opts: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """Per-service searcher limits from ``[custom_threat_service.<service>]`` sections, which
    override what the searcher classes declare; ConfigError names a bad option."""
    overrides, errors = collect_service_limits(opts)
    if errors:
        raise errors[0]
    return overrides


def collect_service_limits(opts: Mapping[str, Any]) -> Tuple[Dict[str, Dict[str, Any]], List[ConfigError]]:
    """The per-service limits, and every ConfigError in their sections."""
    overrides: Dict[str, Dict[str, Any]] = {}
    errors: List[ConfigError] = []
    for section, values in opts.items():
        if not (isinstance(section, str) and section.startswith(SERVICE_SECTION_PREFIX)
                and isinstance(values, Mapping)):
            continue
        limits: Dict[str, Any] = {}
        for name, value in values.items():
            try:
                limit = _service_limit(section, name, value)
            except ConfigError as exc:
                errors.append(exc)
                continue
            if limit is not None:  # None: an unset $VAR, reported by `rc-cts check`
                limits[name] = limit
        if limits.get("breaker_cooldown_secs", 0) > limits.get("breaker_max_cooldown_secs", float("inf")):
            errors.append(option_error("breaker_cooldown_secs", " must not be more than breaker_max_cooldown_secs",
                                       section))
        overrides[section[len(SERVICE_SECTION_PREFIX):].strip("/")] = limits
    return overrides, errors


def _service_limit(section: str, name: str, value: Any) -> Any:
    kind = LIMIT_KINDS.get(name)
    if kind is None:
        raise option_error(name, f" is not one of {', '.join(LIMIT_KINDS)}", section)
    limit = _convert(name, value, None, kind, section)
    if limit is None:
        return None
    problem = value_problem(name, limit)
    if problem:
        raise option_error(name, f": {problem}", section) from None
    return limit


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


@dataclass
class ConfigFile:
    """An app.config as read: ``opts`` as components get them, and each ``$VAR`` reference
    whose variable is unset, as ``{(section, option): variable}``."""
    path: str
    opts: Opts
    unset: Dict[Tuple[str, str], str] = field(default_factory=dict)


def load_config_file(path: str) -> ConfigFile:
    """Read an app.config into ``{section: {option: value}}``, with the ``[resilient]``
    options also at the top level, as resilient-circuits gives them to components.  An
    unset ``$VAR`` reads as None and is recorded in ``unset``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with open(os.path.expanduser(path), encoding="utf-8") as fh:
            parser.read_file(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not UTF-8 text: {exc.reason}") from None
    except configparser.Error as exc:
        raise ConfigError(f"config file {path!r}: " + " ".join(str(exc).split())) from None
    opts: Opts = {}
    unset: Dict[Tuple[str, str], str] = {}
    for name in parser.sections():
        opts[name] = {}
        for key, raw in parser.items(name):
            value = opts[name][key] = _resolve_env(raw)
            if value is None:
                unset[(name, key)] = env_reference(raw) or ""
    return ConfigFile(path, {**opts.get(RESILIENT_SECTION, {}), **opts}, unset)


def read_config_file(path: str) -> Opts:
    """The ``opts`` of an app.config (see ``load_config_file``)."""
    return load_config_file(path).opts
