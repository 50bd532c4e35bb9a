"""The agent's own small HTTP API: probes, metrics and a poke.

``GET /api/health/live`` (the process and its loops are alive) and ``GET /api/health/ready``
(the agent can take work: the API reachable, the last poll recent, the backend's preflight
passing) answer 200 or 503 with the problems named; neither says ok before the first
successful contact with the API. ``GET /api/health`` keeps its older meaning (poll loop and API
stalls, plugin problems). ``GET /metrics`` is Prometheus text; ``POST /api/poke`` wakes the
poll loop. Served by waitress on its own thread, only when ``--agent-address`` is given, so that
an orchestrator (Kubernetes, systemd, a load balancer, Prometheus) can check the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import falcon

from agent_core.engine.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from agent_core.errors import StartupError
from agent_core.serving import RunningServer, serve_in_thread

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.metrics import AgentMetrics


class HealthResource:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = self.agent.health()
        resp.media = status
        resp.status = falcon.HTTP_200 if status["status"] == "ok" else falcon.HTTP_503


class ProbeResource:
    """``/api/health/live`` or ``/api/health/ready``: 200 when ``check()`` is ok, else 503."""

    def __init__(self, agent: Agent, probe: str) -> None:
        self.agent = agent
        self.probe = probe

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        ok, problems = self.agent.liveness() if self.probe == "live" else self.agent.readiness()
        resp.media = {
            "status": "ok" if ok else f"not {self.probe}",
            "problems": problems,
            "agent_id": self.agent.id,
            "name": self.agent.name,
        }
        resp.status = falcon.HTTP_200 if ok else falcon.HTTP_503


class MetricsResource:
    def __init__(self, metrics: AgentMetrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = METRICS_CONTENT_TYPE
        resp.data = self.metrics.render()


class PokeResource:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.agent.poke()
        resp.media = {"poked": True}


def create_health_app(agent: Agent, metrics: AgentMetrics | None = None) -> falcon.App:
    """The app; ``/metrics`` is served when ``metrics`` is given."""
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.add_route("/api/health", HealthResource(agent))
    app.add_route("/api/health/live", ProbeResource(agent, "live"))
    app.add_route("/api/health/ready", ProbeResource(agent, "ready"))
    if metrics is not None:
        app.add_route("/metrics", MetricsResource(metrics))
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
        return serve_in_thread(create_health_app(agent, agent.metrics), host, port, name="health-api", threads=2)
    except StartupError as exc:
        raise StartupError(f"cannot serve the health API on {address}: {exc}") from None


class HealthServer:
    """The health API as a part of the agent (:mod:`agent_core.engine.parts`)."""

    name = "health"

    def __init__(self, agent: Agent, address: str) -> None:
        self.agent = agent
        self.address = address
        self.server: RunningServer | None = None

    @property
    def url(self) -> str:
        return self.server.url if self.server is not None else ""

    def start(self) -> None:
        self.server = start_health_server(self.agent, self.address)

    def stop(self, deadline: float) -> None:
        if self.server is not None:
            self.server.stop()

    def alive(self) -> bool:
        server = self.server
        return server is None or server.thread.is_alive() or server.stopping.is_set()
