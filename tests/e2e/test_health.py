"""The agent's own HTTP API (``--agent-address``): health and poke, and its start-up errors."""

from __future__ import annotations

import socket
import time

import pendulum
import requests

from tests.e2e.conftest import free_port, wait_until


def _health(port: int) -> requests.Response:
    return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=5)


def _health_once_up(port: int) -> requests.Response:
    """The first answer of the health API after the first poll (it starts just after the banner)."""

    def answer() -> requests.Response | None:
        try:
            response = _health(port)
        except requests.ConnectionError:
            return None
        return response if response.json()["last_successful_poll"] else None

    return wait_until(answer, 10, message=f"the health API on port {port}")


def _seconds_since(iso: str) -> float:
    return (pendulum.now("UTC") - pendulum.parse(iso)).total_seconds()


def test_health_answers_200_with_the_agent_id_backend_last_poll_and_in_flight_count(server, client, start_agent):
    port = free_port()
    start_agent(server, "--agent-address", f"http://127.0.0.1:{port}", name="healthy")

    response = _health_once_up(port)

    assert response.status_code == 200
    body = response.json()
    assert body["agent_id"] == next(a["id"] for a in client.list_agents() if a["name"] == "healthy")
    assert body["backend"] == "local"
    assert _seconds_since(body["last_successful_poll"]) < 15
    assert body["in_flight"] == 0


def test_a_poked_idle_agent_claims_a_new_run_promptly(server, client, create_run, start_agent):
    port = free_port()
    start_agent(server, "--agent-address", f"http://127.0.0.1:{port}")
    _health_once_up(port)
    # Idle for 5 s: in its long poll (or, against an older server, in a backoff of seconds).
    # Wait until the last poll is at least a second old.
    time.sleep(5)
    wait_until(
        lambda: _seconds_since(_health(port).json()["last_successful_poll"]) >= 1.0,
        10,
        message="the agent to be sleeping in its backoff",
    )

    run = create_run("true")
    poked = time.time()
    assert requests.post(f"http://127.0.0.1:{port}/api/poke", timeout=5).status_code == 200
    wait_until(lambda: client.get_flow_run(run["id"])["state"]["type"] != "Scheduled", 5)
    # The API's own timestamp of the claim (same machine, same clock), not when this test noticed it.
    submitted = next(s for s in client.flow_run_states(run["id"]) if s["type"] == "Submitted")
    latency = pendulum.parse(submitted["timestamp"]).timestamp() - poked

    # Far below a poll interval even on a loaded machine (bench/agent_bench.py measures it).
    assert latency <= 1.0, f"claimed {latency:.3f}s after the poke"


def test_an_agent_address_whose_port_is_in_use_is_a_one_line_start_up_error(server, start_agent):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        agent = start_agent(server, "--agent-address", f"http://127.0.0.1:{port}", ready=False)

        code = agent.wait(30)

    assert code != 0
    errors = agent.errors()
    assert "Traceback" not in errors
    lines = [line for line in errors.splitlines() if line.strip()]
    assert len(lines) == 1, errors
    assert str(port) in lines[0]


def test_an_agent_address_without_a_port_is_a_clear_start_up_error(server, start_agent):
    agent = start_agent(server, "--agent-address", "http://127.0.0.1", ready=False)

    code = agent.wait(30)

    assert code != 0
    errors = agent.errors()
    assert "Traceback" not in errors
    assert "port" in errors
    assert "--agent-address" in errors


def test_health_answers_503_with_the_reason_once_the_api_is_unreachable_past_the_threshold(server, start_agent):
    port = free_port()
    agent = start_agent(
        server, "--agent-address", f"http://127.0.0.1:{port}", env={"AGENT__AGENT__STALL_THRESHOLD": "1"}
    )
    assert _health_once_up(port).status_code == 200

    server.stop()
    # (A Response is falsy for an error status: wait for its status code instead.)
    wait_until(
        lambda: _health(port).status_code == 503, 20, message=lambda: f"a 503 from /api/health\n{agent.output()}"
    )

    body = _health(port).json()
    assert body["status"] != "ok"
    assert "API" in " ".join(body["problems"].values())
