"""The agent's probes on its health port: ``/api/health/live`` and ``/api/health/ready``.

Real agents (threads) on a real API server; the dead API is a stopped server or a closed
port, the dead Docker daemon a unix socket path where nothing listens.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agent_core.testing.harness import AgentThread, free_loopback_port
from agent_core.testing.servers import APIServer
from tests.core.agent_probe import get, health_address, probe
from tests.core.conftest import wait_until

StartAgent = Callable[..., AgentThread]


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[StartAgent]:
    """``start_agent(api_url, backend="local", **settings)``: an agent thread with a health port,
    started without waiting for it to poll; stopped at the end. ``thread.address`` is the port."""
    started: list[AgentThread] = []

    def start(api_url: str, backend: str = "local", **settings: Any) -> AgentThread:
        settings.setdefault("backend_settings", {"work_dir": str(tmp_path / "runs")} if backend == "local" else {})
        address = health_address()
        thread = AgentThread(api_url, backend, agent_address=address, **settings)
        thread.address = address  # type: ignore[attr-defined]
        started.append(thread)
        thread.thread.start()
        if not wait_until(lambda: get(f"{address}/api/health/live") is not None or not thread.thread.is_alive()):
            pytest.fail("the health port never answered")
        return thread

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()


def test_a_polling_agent_becomes_live_and_ready(sqlite_server: APIServer, start_agent: StartAgent) -> None:
    agent = start_agent(sqlite_server.url)

    ready = wait_until(lambda: (answer := probe(agent.address, "ready"))[0] == 200 and answer)
    live = probe(agent.address, "live")

    assert ready[1] == {"status": "ok", "problems": {}, "agent_id": agent.agent.id, "name": agent.agent.name}
    assert live[0] == 200


def test_before_the_first_api_contact_neither_probe_is_ok(start_agent: StartAgent) -> None:
    closed = f"http://127.0.0.1:{free_loopback_port()}"  # nothing listens: the agent keeps retrying
    agent = start_agent(closed)

    live, live_body = probe(agent.address, "live")
    ready, ready_body = probe(agent.address, "ready")

    assert (live, ready) == (503, 503)
    assert live_body["status"] == "not live"
    assert "api" in live_body["problems"]
    assert "api" in ready_body["problems"]


def test_an_api_gone_after_contact_makes_the_agent_not_ready_but_still_live(
    sqlite_server: APIServer, start_agent: StartAgent
) -> None:
    agent = start_agent(sqlite_server.url)
    wait_until(lambda: agent.agent.polls > 0 and probe(agent.address, "ready")[0] == 200)

    sqlite_server.stop()
    # The first failed poll after the stop says so (while it retries, the poll is "not yet done").
    not_ready = wait_until(lambda: "api" in (answer := probe(agent.address, "ready"))[1]["problems"] and answer, 60)
    live = probe(agent.address, "live")[0]
    sqlite_server.start()

    assert not_ready[0] == 503
    assert "unreachable" in not_ready[1]["problems"]["api"]
    assert live == 200


def test_an_agent_is_ready_again_once_the_api_is_back(sqlite_server: APIServer, start_agent: StartAgent) -> None:
    agent = start_agent(sqlite_server.url)
    wait_until(lambda: agent.agent.polls > 0 and probe(agent.address, "ready")[0] == 200)
    sqlite_server.stop()
    wait_until(lambda: probe(agent.address, "ready")[0] == 503, timeout=60)

    sqlite_server.start()

    wait_until(lambda: probe(agent.address, "ready")[0] == 200, timeout=60)


def test_a_dead_docker_daemon_makes_the_agent_not_ready_but_live(
    sqlite_server: APIServer, start_agent: StartAgent, tmp_path: Path
) -> None:
    pytest.importorskip("agent_plugin_docker")
    nothing = tmp_path / "nothing-listens.sock"  # a path with no daemon behind it
    agent = start_agent(
        sqlite_server.url,
        "docker",
        backend_settings={"base_url": f"unix://{nothing}", "state_dir": str(tmp_path / "docker-state")},
    )
    wait_until(lambda: agent.agent.polls > 0)

    ready, body = probe(agent.address, "ready")
    live = probe(agent.address, "live")[0]

    assert (ready, live) == (503, 200)
    assert str(nothing) in body["problems"]["backend"]


def test_the_older_health_endpoint_keeps_its_meaning(sqlite_server: APIServer, start_agent: StartAgent) -> None:
    agent = start_agent(sqlite_server.url)
    wait_until(lambda: agent.agent.polls > 0)

    answer = requests.get(f"{agent.address}/api/health", timeout=10)

    assert answer.status_code == 200
    assert {"status", "agent_id", "last_successful_poll", "in_flight", "monitored", "problems"} <= set(answer.json())
