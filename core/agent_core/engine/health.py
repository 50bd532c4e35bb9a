"""The agent's own small HTTP API: ``GET /api/health`` and ``POST /api/poke``.

Served by waitress on its own thread, only when ``--agent-address`` is given, so that an
orchestrator (Kubernetes, systemd, a load balancer) can check the agent and wake it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import falcon

from agent_core.errors import StartupError
from agent_core.serving import RunningServer, serve_in_thread

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent


class HealthResource:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = self.agent.health()
        resp.media = status
        resp.status = falcon.HTTP_200 if status["status"] == "ok" else falcon.HTTP_503


class PokeResource:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.agent.poke()
        resp.media = {"poked": True}


def create_health_app(agent: Agent) -> falcon.App:
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.add_route("/api/health", HealthResource(agent))
    app.add_route("/api/poke", PokeResource(agent))
    return app


def parse_agent_address(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "://" in address else f"http://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise StartupError(f"--agent-address {address!r} needs a host and a port, e.g. http://127.0.0.1:8080")
    return parts.hostname, port


def start_health_server(agent: Agent, address: str) -> RunningServer:
    host, port = parse_agent_address(address)
    try:
        return serve_in_thread(create_health_app(agent), host, port, name="health-api", threads=2)
    except StartupError as exc:
        raise StartupError(f"cannot serve the health API on {address}: {exc}") from None
