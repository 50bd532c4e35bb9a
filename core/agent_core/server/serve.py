"""Serving the API: opening its store, the auth policy, and the API app on waitress (``agent_core.serving``)."""

from __future__ import annotations

import logging
from typing import Any

from agent_core.errors import ConfigError, StartupError
from agent_core.server.app import create_app
from agent_core.server.storage import Store, make_engine, upgrade
from agent_core.serving import RunningServer, create_wsgi_server, is_loopback, serve_in_thread, serve_until

__all__ = ["RunningServer", "check_auth_policy", "make_server", "open_store", "serve_until", "start_in_thread"]

log = logging.getLogger(__name__)


def open_store(db_url: str) -> Store:
    """Connect, migrate to the latest schema, and make sure the default tenant exists."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
    except ConfigError:
        raise
    except Exception as exc:
        raise StartupError(f"cannot open the database {engine.url.render_as_string()}: {exc}") from exc
    store = Store(engine)
    store.ensure_tenant()
    return store


def check_auth_policy(host: str, auth: bool, store: Store) -> None:
    if not auth and not is_loopback(host):
        raise StartupError(
            f"refusing to serve on {host} without auth: anyone who can reach it could run commands. "
            "Start with --auth (and create keys with 'agent keys create --role ROLE'), or bind to 127.0.0.1"
        )
    if auth and store.count_active_keys() == 0:
        raise StartupError(
            "--auth is on but the database has no API key yet: create one first with "
            "'agent --db URL keys create --role admin' (it is shown once)"
        )


def make_server(
    store: Store, host: str = "127.0.0.1", port: int = 4200, *, auth: bool = False, threads: int = 8
) -> Any:
    return create_wsgi_server(create_app(store, auth_required=auth), host, port, threads=threads)


def start_in_thread(store: Store, host: str = "127.0.0.1", port: int = 0, *, auth: bool = False) -> RunningServer:
    """Serve the API on a background thread; used by the embedded agent and tests."""
    return serve_in_thread(create_app(store, auth_required=auth), host, port, name="api-server", threads=8)
