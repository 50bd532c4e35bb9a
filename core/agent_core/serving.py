"""Serving a WSGI app with waitress: the one place that maps settings to waitress options.

Kept apart from the API app (``agent_core.server``) so that the agent's health API, which
serves its own small app, imports neither the API server nor SQLAlchemy.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from agent_core.errors import StartupError

# waitress stops accepting at 100 open connections by default, idle keep-alive ones included:
# a few dozen agents, each keeping a pooled connection or two besides its long poll, reach that,
# and then every new client waits until one closes. Open connections are cheap sockets; the
# bound that matters is the process's file-descriptor limit (less a reserve for the database
# pool, logs and workloads).
MAX_CONNECTIONS = 1000
# How long a stopping server keeps serving the requests in progress.
DRAIN_SECONDS = 5.0
_FD_RESERVE = 100

# waitress refuses bodies over this itself (with a JSON 413, see below), before the app reads
# them; the API app's own limit is lower (2 MiB) and names itself.
MAX_REQUEST_BODY = 4 * 1024 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class RunningServer:
    """A waitress server on its own thread; ``url`` is where it listens."""

    server: Any
    thread: threading.Thread
    url: str
    stopping: threading.Event
    # Called in order once stopping, before the requests in progress are waited for (e.g. the
    # API's background parts, which also end its long polls at once).
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop accepting, finish the requests in progress (up to 5 s), and close every socket."""
        self.stopping.set()
        callbacks, self.on_stop = self.on_stop, []
        for callback in callbacks:
            callback()
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
    # The answers of requests in progress (long polls ended by the stop) are written to their
    # sockets by this loop, not by the task threads: keep stepping it until they are sent.
    server.accepting = False
    deadline = time.monotonic() + DRAIN_SECONDS
    while _busy(server) and time.monotonic() < deadline:
        server.asyncore.loop(timeout=0.05, map=server._map, use_poll=True, count=1)
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(server._map)


def _busy(server: Any) -> bool:
    """Whether a request is being served, queued, or has an answer not yet sent."""
    dispatcher = server.task_dispatcher
    if dispatcher.active_count or dispatcher.queue:
        return True
    return any(
        getattr(channel, "requests", None) or getattr(channel, "total_outbufs_len", 0)
        for channel in list(server._map.values())
    )


def serve_in_thread(app: Any, host: str, port: int, *, name: str, threads: int = 4) -> RunningServer:
    """Serve a WSGI app on a background thread (port 0: any free port)."""
    server = create_wsgi_server(app, host, port, threads=threads)
    stopping = threading.Event()
    thread = threading.Thread(target=serve_until, args=(server, stopping), name=name, daemon=True)
    thread.start()
    return RunningServer(server=server, thread=thread, url=f"http://{host}:{server.effective_port}", stopping=stopping)


class JSONErrorTask(ErrorTask):
    """waitress's own error answers (a malformed request line, headers or body too large, a
    broken chunked encoding) as JSON ``{"error", "detail"}``, like every answer of the app."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": error.reason, "detail": str(error.body).strip()}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class JSONErrorChannel(HTTPChannel):
    error_task_class = JSONErrorTask


def connection_limit() -> int:
    """How many connections a server keeps open at most: ``MAX_CONNECTIONS``, or fewer when the
    file-descriptor limit is low (never under waitress's own default of 100)."""
    try:
        import resource
    except ImportError:  # not a Unix: no limit to read
        return MAX_CONNECTIONS
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(100, min(MAX_CONNECTIONS, soft - _FD_RESERVE))


def create_wsgi_server(app: Any, host: str, port: int, *, threads: int = 8) -> Any:
    try:
        server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            connection_limit=connection_limit(),
            ident="agent",
            clear_untrusted_proxy_headers=True,
            max_request_body_size=MAX_REQUEST_BODY,
        )
    except OSError as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port") from None
    except (socket.gaierror, ValueError) as exc:
        raise StartupError(f"cannot listen on {host}:{port}: {exc}") from None
    server.channel_class = JSONErrorChannel
    return server
