"""Serving the API: opening its store, the auth policy, and the API app on waitress (``agent_core.serving``)."""

from __future__ import annotations

import logging
from typing import Any

from agent_core.errors import ConfigError, StartupError
from agent_core.server.app import create_app
from agent_core.server.service import APIService
from agent_core.server.settings import ServerSettings
from agent_core.server.storage import Store, make_engine, upgrade
from agent_core.server.storage.db import describe_url
from agent_core.serving import RunningServer, create_wsgi_server, is_loopback, serve_in_thread, serve_until

__all__ = [
    "RunningServer",
    "check_auth_policy",
    "make_server",
    "open_store",
    "serve_until",
    "start_in_thread",
    "worker_threads",
]

log = logging.getLogger(__name__)

DEFAULT_THREADS = 8


def open_store(db_url: str) -> Store:
    """Connect, migrate to the latest schema, and make sure the default tenant exists."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        store = Store(engine)
        store.ensure_tenant()
    except ConfigError:
        engine.dispose()
        raise
    except Exception as exc:
        engine.dispose()
        raise StartupError(f"cannot open the database {describe_url(engine.url)}: {_reason(exc)}") from None
    return store


def _reason(exc: BaseException) -> str:
    # The driver's own message (SQLAlchemy appends SQL and a link to its docs): first line only.
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__


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


def worker_threads(threads: int, settings: ServerSettings) -> int:
    """waitress threads: ``threads`` for ordinary requests plus one per long-poll slot, so that
    waiting agents (at most ``long_poll_slots`` of them) never take an ordinary request's thread."""
    return threads + settings.long_poll_slots


def make_server(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 4200,
    *,
    auth: bool = False,
    threads: int = DEFAULT_THREADS,
    settings: ServerSettings | None = None,
) -> tuple[Any, APIService]:
    """A waitress server of the API (not yet serving) and its service (to start, and stop after)."""
    service = APIService(store, settings)
    app = create_app(store, auth_required=auth, service=service)
    return create_wsgi_server(app, host, port, threads=worker_threads(threads, service.settings)), service


def start_in_thread(
    store: Store,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    auth: bool = False,
    threads: int = DEFAULT_THREADS,
    settings: ServerSettings | None = None,
    service: APIService | None = None,
) -> RunningServer:
    """Serve the API on a background thread, its lease sweep running; used by the embedded agent and tests.

    The service is stopped with the server.
    """
    service = service or APIService(store, settings)
    app = create_app(store, auth_required=auth, service=service)
    running = serve_in_thread(app, host, port, name="api-server", threads=worker_threads(threads, service.settings))
    service.start()
    running.on_stop.append(service.stop)
    return running
