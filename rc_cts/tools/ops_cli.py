"""The operators' commands that talk to a running service or its store:
``rc-cts searchers --url`` (each searcher's breaker) and ``rc-cts cache clear``."""
from __future__ import annotations

import argparse
import json
from typing import Any, Callable, Dict, List, Optional, Tuple
from urllib.parse import urlencode

from ..config.settings import ConfigFile, settings_from_opts
from ..store import open_store
from ..store.answers import artifact_digest
from .client import Client, Response

Table = Callable[[Optional[List[str]], List[tuple]], None]


class UsageError(Exception):
    """A command line that cannot work: the CLI exits 2 with this one line."""


def add_remote_options(parser: argparse.ArgumentParser, token_option: str) -> None:
    parser.add_argument("--url", help="a running service, e.g. http://host:9000")
    parser.add_argument("--token", help=f"the Bearer token ({token_option}) for --url")
    parser.add_argument("--user", help="HTTP Basic user for --url (auth_user)")
    parser.add_argument("--password", help="HTTP Basic password for --url")


def _client(args: argparse.Namespace) -> Tuple[Client, Dict[str, str]]:
    client = Client(args.url.rstrip("/"), user=args.user, password=args.password, timeout=10)
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    return client, headers


def remote_searchers(args: argparse.Namespace, table: Table) -> int:
    """Each searcher of a running service with its breaker, from /readyz's detail."""
    client, headers = _client(args)
    response = client.request("GET", "/readyz", headers=headers)
    body = _json(response)
    breakers = body.get("breakers") if isinstance(body, dict) else None
    if breakers is None:
        print(f"{args.url} did not show its searchers (HTTP {response.status}): give --token "
              "(its metrics_token) or --user/--password (its auth_user)")
        return 1
    rows = []
    for service, searchers in breakers.items():
        for name, state in searchers.items():
            note = f"probe in {state['probe_in_secs']:g}s" if "probe_in_secs" in state else ""
            rows.append((service, name, state["state"], state["since"], state.get("trips", 0), note))
    table(["SERVICE", "SEARCHER", "BREAKER", "SINCE", "TRIPS", ""], rows)
    print(f"{args.url}: {body.get('status', '?')}")
    return 0


def cache_clear(args: argparse.Namespace, config: Optional[ConfigFile]) -> int:
    """Drop cached answers: through ``--url`` (the admin endpoint), else straight in the store
    app.config names (SQLite or Redis: a memory store lives in the service's process)."""
    if (args.type is None) != (args.value is None):
        raise UsageError("--type and --value go together: both name one artifact")
    if any(value is not None and not value.strip() for value in (args.service, args.type, args.value)):
        raise UsageError("an empty --service, --type or --value names nothing: leave it out to mean all")
    if args.url:
        return _clear_remote(args)
    settings = settings_from_opts(config.opts if config is not None else {})
    if settings.store == "memory":
        raise UsageError("the memory store lives in the service's process: use --url (with its admin_token)")
    artifact = artifact_digest(args.type, args.value) if args.type is not None else None
    store = open_store(settings, maintenance=True)
    try:
        count = store.clear_answers(args.service, artifact)
    finally:
        store.close()
    print(f"{count} cached answers cleared ({_scope(args)})")
    return 0


def _clear_remote(args: argparse.Namespace) -> int:
    client, headers = _client(args)
    query = {name: value for name, value in (("service", args.service), ("type", args.type),
                                               ("value", args.value)) if value is not None}
    response = client.request("DELETE", "/admin/cache" + (f"?{urlencode(query)}" if query else ""), headers=headers)
    body = _json(response)
    if response.status != 200:
        error = body.get("error", "") if isinstance(body, dict) else ""
        print(f"{args.url}/admin/cache answered HTTP {response.status}: {error}")
        return 1
    print(f"{body['cleared']} cached answers cleared ({_scope(args)})")
    return 0


def _scope(args: argparse.Namespace) -> str:
    service = f"service {args.service}" if args.service else "every service"
    return f"{service}, one {args.type} artifact" if args.type else f"{service}, every artifact"


def _json(response: Response) -> Any:
    try:
        return json.loads(response.raw)
    except ValueError:
        return None

