"""Serving the API with waitress: the one place that maps settings to waitress options."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server

from agent_core.errors import ConfigError, StartupError
from agent_core.server.app import create_app
from agent_core.server.storage import Store, make_engine, upgrade

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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


@dataclass
class RunningServer:
    """A waitress server on its own thread; ``url`` is where it listens."""

    server: Any
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


def check_auth_policy(host: str, auth: bool, store: Store) -> None:
    if not auth and not is_loopback(host):
        raise StartupError(
            f"refusing to serve on {host} without auth: anyone who can reach it could run commands. "
            "Start with --auth (and create keys with 'agent keys create --role ROLE'), or bind to 127.0.0.1"
        )
    if auth and store.count_active_keys() == 0:
        raise StartupError(
            "--auth is on but the database has no API key yet: create one first with "
            "'agent keys create --role admin --db URL' (it is shown once)"
        )


def make_server(
    store: Store, host: str = "127.0.0.1", port: int = 4200, *, auth: bool = False, threads: int = 8
) -> Any:
    app = create_app(store, auth_required=auth)
    try:
        return create_server(
            app, host=host, port=port, threads=threads, ident="agent", clear_untrusted_proxy_headers=True
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None
    except (socket.gaierror, ValueError) as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None


def start_in_thread(store: Store, host: str = "127.0.0.1", port: int = 0, *, auth: bool = False) -> RunningServer:
    """Serve on a background thread (port 0: any free port); used by the embedded agent and tests."""
    server = make_server(store, host, port, auth=auth)
    actual_port = server.effective_port
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread, url=f"http://{host}:{actual_port}")
