"""``resilient-circuits selftest`` for rc-cts.

The command checks the app.config's PAM plugin, logs in to SOAR over REST, then starts the
daemon (every installed component, rc-cts's service too) and waits until some component
subscribes to a message destination over STOMP; if none does within ``selftest_timeout``
it exits 33. Only then does it call each app's ``resilient.circuits.selftest`` entry point
(ours: ``selftest_function``) and exit 1 if one answers ``failure``, else 0.

A threat service has no message destination (SOAR sends it artifacts over HTTP), so that
wait could never end: once STOMP has connected, ``stomp_connected`` (called by the service)
lets the check go on when no other component has a destination to subscribe to. Then
``selftest_function`` checks the threat service itself.
"""
from __future__ import annotations

import logging
import ssl
import uuid
from typing import Any, Dict, Mapping

from . import plugins
from .config.settings import ConfigError, Settings, settings_from_opts
from .hits import service_of
from .store import StoreError, open_store

LOG = logging.getLogger(__name__)
NO_DESTINATION = "(rc-cts: a threat service subscribes to no message destination)"


def stomp_connected(component: Any) -> None:
    """Under ``resilient-circuits selftest``, once STOMP has connected: count the connection
    as the subscription its STOMP check waits for, unless a component of the daemon has a
    message destination (its own subscription is then the one to wait for)."""
    try:
        from resilient_circuits import ResilientComponent
        from resilient_circuits.actions_component import SELFTEST_SUBSCRIPTIONS, Actions
    except ImportError:
        return
    if not ResilientComponent.IS_SELFTEST or SELFTEST_SUBSCRIPTIONS:
        return
    if any(isinstance(c, Actions) and c.listeners for c in _tree(component.root)):
        return
    LOG.info("selftest: STOMP connected; the threat service subscribes to no message destination")
    SELFTEST_SUBSCRIPTIONS.append(NO_DESTINATION)


def _tree(component: Any):
    yield component
    for child in getattr(component, "components", ()):
        yield from _tree(child)


def selftest_function(opts: Mapping[str, Any]) -> Dict[str, str]:
    """``{"state": "success" | "failure", "reason": ...}`` as resilient-circuits expects: the
    configuration is valid (the TLS certificate loads), the installed searchers load and are
    created, the store answers, and the service answers OPTIONS for each of its services
    (started here on a free port of 127.0.0.1, beside any running one, on a memory store)."""
    try:
        settings = settings_from_opts(opts)
        if settings.secure and settings.certfile:
            _load_certificate(settings)
    except ConfigError as exc:
        return _failure(f"configuration error: {exc}")
    classes, errors = plugins.discover()
    if errors:
        return _failure("searchers that do not load: " + "; ".join(map(str, errors)))
    if not classes:
        return _failure("no searcher packages are installed")
    from .runner import standalone_opts, start_in_thread
    searchers, errors = plugins.instantiate(classes, standalone_opts(opts))
    if errors:
        return _failure("searchers that cannot be created: " + "; ".join(map(str, errors)))
    try:
        store = open_store(settings)
        try:
            store.get(f"rc-cts-selftest-{uuid.uuid4()}")
        finally:
            store.close()
    except (StoreError, OSError) as exc:
        return _failure(f"the {settings.store} store does not answer: {exc}")
    probe = {**opts, "webserver": {"server": "127.0.0.1", "port": "0"},
             "custom_threat_service": {**opts.get("custom_threat_service", {}), "store": "memory"}}
    try:
        running = start_in_thread(probe, searchers)
    except (OSError, StoreError) as exc:
        return _failure(f"the service does not start: {exc}")
    try:
        client = running.client(user=settings.auth_user, password=settings.auth_password) \
            if settings.auth_enabled else running.client()
        services = sorted({service_of(ch) for ch in running.service.dispatcher.registry.channels()})
        for service in services:
            status = client.options(service).status
            if status != 200:
                return _failure(f"the service /{service} answers OPTIONS with {status}")
    except OSError as exc:
        return _failure(f"the service does not answer: {exc}")
    finally:
        running.stop()
    scheme = "https" if settings.secure else "http"
    return {"state": "success",
            "reason": f"{len(classes)} searchers serving {', '.join(services)} under "
                      f"{scheme}://{settings.server}:{settings.port}{settings.urlbase}; "
                      f"{settings.store} store answers"}


def _load_certificate(settings: Settings) -> None:
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.certfile or "",
                                                                           settings.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"option 'certfile': cannot load {settings.certfile!r}: {exc}") from None


def _failure(reason: str) -> Dict[str, str]:
    LOG.error("selftest: %s", reason)
    return {"state": "failure", "reason": reason}
