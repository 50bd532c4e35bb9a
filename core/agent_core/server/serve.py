"""Serving the API with waitress: the one place that maps settings to waitress options."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any

from waitress import wasyncore
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
    stopping: threading.Event

    def stop(self) -> None:
        """Stop accepting, finish the requests in progress (up to 5 s), and close every socket."""
        self.stopping.set()
        try:
            self.server.pull_trigger()
        except OSError:
            pass  # the loop woke on its own, saw `stopping` and has closed the trigger already
        self.thread.join(timeout=10)


def serve_until(server: Any, stopping: threading.Event) -> None:
    """Serve on this thread until ``stopping`` is set (then call ``server.pull_trigger()``)."""
    # waitress's own run() can only be ended by closing its sockets under it from another
    # thread (EBADF in select); stepping the loop lets this thread close them itself.
    while not stopping.is_set():
        server.asyncore.loop(timeout=0.5, map=server._map, use_poll=True, count=1)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    wasyncore.close_all(server._map)


def serve_in_thread(app: Any, host: str, port: int, *, name: str, threads: int = 4) -> RunningServer:
    """Serve a WSGI app on a background thread (port 0: any free port)."""
    server = create_wsgi_server(app, host, port, threads=threads)
    stopping = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stopping), name=name, daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread, url=f"http://{host}:{server.effective_port}", stopping=stopping)


def create_wsgi_server(app: Any, host: str, port: int, *, threads: int = 8) -> Any:
    try:
        return create_server(
            app, host=host, port=port, threads=threads, ident="agent", clear_untrusted_proxy_headers=True
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port") from None
    except (socket.gaierror, ValueError) as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None


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
