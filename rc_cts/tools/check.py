"""``rc-cts check``, and the same checks at ``rc-cts run``: everything that would make the
service fail, or silently not do what the file says, found before it starts.

Each problem is one line naming its section and option.  Errors stop ``run``; warnings do not
(an unknown section may belong to another app sharing the file).  A problem of the file itself
exits 2, one of the host (a store, a certificate, a searcher package) exits 1.
"""
from __future__ import annotations

import difflib
import os
import ssl
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from .. import plugins
from ..config.settings import (CTS_SECTION, RESILIENT_SECTION, SERVICE_SECTION_PREFIX, WEB_SECTION, ConfigError,
                               ConfigFile, Settings, collect_settings, options_of, section_of, where)
from ..lookups.limits import LIMIT_KINDS
from ..logs import log_path, mask_secrets
from ..store import StoreError, open_store

ERROR, WARNING = "error", "warning"
CONFIG, HOST = 2, 1   # exit codes: the file is wrong / the host is not ready for it
STORE_PROBE_ID = "rc-cts-check"
NO_SEARCHER = ("no searcher is installed (install a searcher package; rc-cts run --allow-empty "
               "starts anyway)")
OWN_SECTIONS = (WEB_SECTION, CTS_SECTION, RESILIENT_SECTION)
# [resilient] belongs to resilient-circuits and the resilient library: an option there is
# reported only when it looks like a misspelling of one of these.
RESILIENT_OPTIONS = (
    "host", "port", "org", "email", "password", "api_key_id", "api_key_secret", "cafile", "componentsdir",
    "noload", "stomp_host", "stomp_port", "stomp_cafile", "stomp_timeout", "stomp_max_retries",
    "max_connection_retries", "no_prompt_password", "test_actions", "test_host", "test_port",
    "log_http_responses", "resource_prefix", "num_workers", "stomp_prefetch_limit", "trap_exception",
    "heartbeat_timeout_threshold", "rc_use_persistent_sessions", "selftest_timeout", "proxy_host",
    "proxy_port", "proxy_user", "proxy_password", "client_auth_cert", "client_auth_key", "timeout",
    "request_max_retries", "request_retry_delay", "request_retry_backoff", "pam_plugin", "pam_type")


@dataclass(frozen=True)
class Problem:
    severity: str   # ERROR or WARNING
    text: str       # names its section and option
    exit_code: int = CONFIG
    section: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.severity}: {mask_secrets(self.text)}"


@dataclass
class Report:
    """What ``check`` found; ``run`` starts with its settings and searcher instances."""
    settings: Settings
    problems: List[Problem] = field(default_factory=list)
    classes: List[plugins.SearcherClass] = field(default_factory=list)
    searchers: List[Any] = field(default_factory=list)

    @property
    def errors(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def warnings(self) -> List[Problem]:
        return [p for p in self.problems if p.severity == WARNING]

    @property
    def exit_code(self) -> int:
        codes = [p.exit_code for p in self.errors]
        return max(codes) if codes else 0


def _error(text: str, exit_code: int = CONFIG, section: Optional[str] = None) -> Problem:
    return Problem(ERROR, text, exit_code, section)


def _warning(text: str, section: Optional[str] = None) -> Problem:
    return Problem(WARNING, text, CONFIG, section)


def _did_you_mean(word: str, candidates: Iterable[str], quote: str = "'") -> str:
    match = difflib.get_close_matches(word, list(candidates), n=1)
    if not match:
        return ""
    shown = f"[{match[0]}]" if quote == "[" else f"'{match[0]}'"
    return f" (did you mean {shown}?)"


# -- the file: sections, options, values ---------------------------------------------------------
def check_config(config: Optional[ConfigFile], declared: Mapping[str, plugins.DeclaredSection],
                 services: Sequence[str]) -> Tuple[Settings, List[Problem]]:
    """Settings from the file, and its problems: unknown sections and options, unset
    ``$VAR``s, and values of the wrong type or out of range."""
    opts: Mapping[str, Any] = config.opts if config is not None else {}
    settings, errors = collect_settings(opts)
    if config is None:
        return settings, [_error(str(e)) for e in errors]
    problems: List[Problem] = []
    reported: Set[Tuple[Optional[str], Optional[str]]] = set()
    for section, values in opts.items():
        if isinstance(values, Mapping):
            for problem, option in _section_problems(section, values, declared, services):
                problems.append(replace(problem, section=section))
                reported.add((section, option))
    for (section, option), variable in config.unset.items():
        known = section in OWN_SECTIONS or section in declared or section.startswith(SERVICE_SECTION_PREFIX)
        text = f"{where(option, section)}: ${variable} is not set in the environment"
        problems.append(_error(text, section=section) if known else _warning(text, section))
        reported.add((section, option))
    problems += [_error(str(e), section=e.section) for e in errors if (e.section, e.option) not in reported]
    order = {name: n for n, name in enumerate(s for s, v in opts.items() if isinstance(v, Mapping))}
    return settings, sorted(problems, key=lambda p: order.get(p.section or "", len(order)))


def _section_problems(section: str, values: Mapping[str, Any], declared: Mapping[str, plugins.DeclaredSection],
                      services: Sequence[str]) -> List[Tuple[Problem, Optional[str]]]:
    if section in (WEB_SECTION, CTS_SECTION):
        return [(_error(_unknown_option(section, option)), option)
                for option in values if option not in options_of(section)]
    if section == RESILIENT_SECTION:
        return _resilient_section_problems(values)
    if section.startswith(SERVICE_SECTION_PREFIX):
        return _service_section_problems(section, values, services)
    if section in declared:
        known = declared[section].options
        return [(_warning(f"{where(option, section)}: unknown option: {declared[section].distribution} "
                          f"does not declare it{_did_you_mean(option, known)}"), option)
                for option in values if not _declares(known, option)]
    candidates = [*OWN_SECTIONS, *declared, *(SERVICE_SECTION_PREFIX + s for s in services)]
    return [(_warning(f"[{section}]: unknown section: no installed package declares it"
                      f"{_did_you_mean(section, candidates, quote='[')}"), None)]


def _resilient_section_problems(values: Mapping[str, Any]) -> List[Tuple[Problem, Optional[str]]]:
    """Options of ours or resilient-circuits' pass; another is reported only if it looks like a
    misspelling: of one of our log options an error (it would be ignored), else a warning."""
    ours = options_of(RESILIENT_SECTION)
    found: List[Tuple[Problem, Optional[str]]] = []
    for option in values:
        if option in ours or option in RESILIENT_OPTIONS:
            continue
        text = f"{where(option, RESILIENT_SECTION)}: unknown option"
        hint = _did_you_mean(option, ours)
        if hint:
            found.append((_error(text + hint), option))
        elif _did_you_mean(option, RESILIENT_OPTIONS):
            found.append((_warning(text + _did_you_mean(option, RESILIENT_OPTIONS)), option))
    return found


def _unknown_option(section: str, option: str) -> str:
    home = section_of(option)
    hint = f" (it belongs in [{home}])" if home else _did_you_mean(option, options_of(section))
    return f"{where(option, section)}: unknown option{hint}"


def _declares(known: Set[str], option: str) -> bool:
    """``feed.<name>`` options: a declared ``feed.urlhaus`` example declares every ``feed.*``."""
    return option in known or any(k.rsplit(".", 1)[0] == option.rsplit(".", 1)[0] for k in known
                                  if "." in k and "." in option)


def _service_section_problems(section: str, values: Mapping[str, Any],
                              services: Sequence[str]) -> List[Tuple[Problem, Optional[str]]]:
    found: List[Tuple[Problem, Optional[str]]] = []
    service = section[len(SERVICE_SECTION_PREFIX):].strip("/")
    if service not in services:
        found.append((_warning(f"[{section}]: no installed searcher serves {service!r}"
                               f"{_did_you_mean(service, services)}"), None))
    for option in values:
        if option not in LIMIT_KINDS:
            found.append((_error(f"{where(option, section)}: unknown option"
                                 f"{_did_you_mean(option, LIMIT_KINDS)}"), option))
    return found


# -- the host: files, store, searchers ----------------------------------------------------------
def check_files(s: Settings) -> List[Problem]:
    """The certificate and key (when secure), the upload directory and the log file."""
    problems = _check_tls(s) if s.secure else []
    upload_dir = os.path.expanduser(s.upload_dir) if s.upload_dir else None
    if upload_dir and os.path.isdir(upload_dir) and not os.access(upload_dir, os.W_OK | os.X_OK):
        problems.append(_error(f"{where('upload_dir')}: {s.upload_dir!r} is not writable", HOST))
    path = log_path(s.logdir, s.logfile)
    if path is not None and not _writable(path):
        option = "logdir" if s.logdir else "logfile"
        problems.append(_error(f"{where(option)}: cannot write the log file {path!r}", HOST))
    return problems


def _check_tls(s: Settings) -> List[Problem]:
    """Both files readable, then loadable together, as the listener will load them."""
    problems = []
    for name in ("certfile", "keyfile"):
        path = getattr(s, name)
        reason = _unreadable(path) if path else None
        if reason:
            problems.append(_error(f"{where(name)}: cannot read {path!r}: {reason}", HOST))
    if not problems and s.certfile:
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(s.certfile, s.keyfile)
        except (ssl.SSLError, OSError) as exc:
            problems.append(_error(f"{where('certfile')}: not a usable certificate and key: {exc}", HOST))
    return problems


def _unreadable(path: str) -> Optional[str]:
    try:
        with open(path, "rb"):
            return None
    except OSError as exc:
        return exc.strerror or str(exc)


def _writable(path: str) -> bool:
    """Whether ``path`` can be appended to, or created (with its directories): no file is made."""
    target = path
    while not os.path.exists(target):
        parent = os.path.dirname(os.path.abspath(target))
        if parent == target:
            return False
        target = parent
    if os.path.isdir(target) and target != path:
        return os.access(target, os.W_OK | os.X_OK)
    return os.path.isfile(target) and os.access(target, os.W_OK)


def check_store(s: Settings) -> List[Problem]:
    """Open the store and take and give back one lease: a write and a read, within the store's
    own short timeouts (Redis: 1 s)."""
    if s.store == "memory":
        return []
    option = "sqlite_path" if s.store == "sqlite" else "redis_url"
    try:
        store = open_store(s)
    except StoreError as exc:
        text = str(exc)  # the store may name the option itself: say it once
        text = text[text.index(":") + 2:] if text.startswith(f"option '{option}'") and ": " in text else text
        return [_error(f"{where(option)}: {text}", HOST)]
    try:
        owner = f"rc-cts-check-{os.getpid()}"
        store.lease(STORE_PROBE_ID, owner, 1.0)
        store.release(STORE_PROBE_ID, owner)
    except StoreError as exc:
        return [_error(f"{where(option)}: {exc}", HOST)]
    finally:
        store.close()
    return []


def check_searchers(load_errors: Sequence[plugins.LoadError], searchers: Sequence[Any],
                    allow_empty: bool) -> List[Problem]:
    problems = [_error(f"searcher {e.entry_point} ({e.distribution}) not loaded: {e.message}", HOST)
                for e in load_errors]
    if not searchers and not load_errors and not allow_empty:
        problems.append(_error(NO_SEARCHER, HOST))
    return problems


def run_checks(config: Optional[ConfigFile], allow_empty: bool = False, store: bool = True) -> Report:
    """Every check, in order: the file, its files, the store, the searchers (created with the
    file's options, as ``run`` creates them)."""
    from ..runner import load_searchers
    opts = config.opts if config is not None else {}
    classes, searchers, load_errors = load_searchers(opts)
    services = sorted({sc.service for sc in classes})
    settings, problems = check_config(config, plugins.declared_sections(), services)
    problems += check_files(settings)
    if store:
        problems += check_store(settings)
    problems += check_searchers(load_errors, searchers, allow_empty)
    return Report(settings, problems, classes, searchers)


def service_rows(classes: Sequence[plugins.SearcherClass]) -> List[Tuple[str, str, str]]:
    """(service, artifact types, searcher classes): one row per service."""
    by_service: Dict[str, Tuple[Set[str], List[str]]] = {}
    for sc in classes:
        types, names = by_service.setdefault(sc.service, (set(), []))
        types.update(sc.artifact_types())
        names.append(sc.cls.__name__)
    return [(service, ", ".join(sorted(types)).replace("*", "every type") or "-", ", ".join(names))
            for service, (types, names) in sorted(by_service.items())]


__all__ = ["ConfigError", "Problem", "Report", "run_checks", "check_config", "service_rows"]
