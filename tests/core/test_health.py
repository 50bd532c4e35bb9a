"""``Agent.health()`` and the health API (``--agent-address``): /api/health and /api/poke."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from agent_core.client import APIClient
from agent_core.errors import StartupError
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, wait_until


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_is_ok_after_a_successful_poll(make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True)

    agent.poll_once()
    health = agent.health()

    assert health["status"] == "ok"
    assert health["problems"] == {}
    assert (health["agent_id"], health["backend"]) == (agent.id, "x")
    assert health["last_successful_poll"] == clock.now().isoformat()


def test_set_problem_makes_health_unhealthy_with_the_reason_until_cleared(make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True)
    agent.poll_once()

    agent.set_problem("docker", "the Docker daemon is not answering")
    assert agent.health()["status"] == "unhealthy"
    assert agent.health()["problems"] == {"docker": "the Docker daemon is not answering"}

    agent.clear_problem("docker")
    assert agent.health()["status"] == "ok"


def test_an_unreachable_api_is_a_problem_only_after_the_stall_threshold(
    sqlite_server: APIServer, make_agent, clock: FakeClock
) -> None:
    agent = make_agent(clock=clock, prepare=True, stall_threshold=30)
    sqlite_server.stop()

    agent.poll_once()
    clock.advance(29)
    assert agent.health()["status"] == "ok"
    clock.advance(2)
    health = agent.health()

    sqlite_server.start()
    assert health["status"] == "unhealthy"
    assert "unreachable" in health["problems"]["api"]
    agent.poll_once()
    assert agent.health()["status"] == "ok"


def test_a_poll_loop_that_stopped_polling_is_a_problem(make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True, stall_threshold=30)
    agent.poll_once()

    clock.advance(30 + 10 + 1)

    assert "poll" in agent.health()["problems"]


def test_the_health_api_answers_200_then_503_with_the_reason(make_agent) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    agent = make_agent(start=True, agent_address=address)
    wait_until(lambda: agent.health()["last_successful_poll"])

    ok = wait_until(lambda: _get(f"{address}/api/health"))
    assert ok.status_code == 200
    assert ok.json()["agent_id"] == agent.id
    assert {"last_successful_poll", "in_flight", "status"} <= set(ok.json())

    agent.set_problem("disk", "the run directory is full")
    bad = requests.get(f"{address}/api/health", timeout=5)
    assert bad.status_code == 503
    assert bad.json()["problems"] == {"disk": "the run directory is full"}


def test_the_health_api_poke_wakes_the_poll_loop(make_agent, sqlite_api: APIClient) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    backend = Backend()
    # Polling with backoff: a long poll would see the new run by itself.
    agent = make_agent([backend], start=True, agent_address=address, long_poll_seconds=0)
    wait_until(lambda: agent.polls >= 5, timeout=15)  # in the 4 s wait
    create_run(sqlite_api)

    poked = time.monotonic()
    answer = requests.post(f"{address}/api/poke", timeout=5)
    wait_until(lambda: backend.deployed, timeout=5)

    assert answer.status_code == 200
    assert time.monotonic() - poked < 3.0  # well before the 4 s wait would have ended


def test_a_health_port_in_use_is_a_clear_startup_error(make_agent) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = make_agent(agent_address=f"http://127.0.0.1:{port}")
        make_agent.start(agent).join(10)

    error = make_agent.errors.get(agent.name)
    assert isinstance(error, StartupError)
    assert str(port) in str(error)


@pytest.mark.parametrize("address", ["http://127.0.0.1", "not a url:port"])
def test_a_health_address_without_a_port_is_a_clear_startup_error(make_agent, address: str) -> None:
    agent = make_agent(agent_address=address)
    make_agent.start(agent).join(10)

    error = make_agent.errors.get(agent.name)
    assert isinstance(error, StartupError)
    assert "host and a port" in str(error)


def _get(url: str) -> requests.Response | None:
    try:
        return requests.get(url, timeout=5)
    except requests.ConnectionError:
        return None


def test_stopping_a_server_whose_loop_woke_first_is_clean() -> None:
    """Regression: RunningServer.stop raised EBADF when the serving loop closed its trigger first."""
    from agent_core.engine.health import create_health_app
    from agent_core.serving import serve_in_thread

    running = serve_in_thread(create_health_app(None), "127.0.0.1", 0, name="health-api")
    # The interleaving of the race, made deterministic: stop() sets `stopping`, the loop wakes
    # from its poll and closes its sockets, then stop() pulls the trigger.
    running.stopping.set()
    running.thread.join(5)

    running.stop()
