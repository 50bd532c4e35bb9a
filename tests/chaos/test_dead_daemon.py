"""A docker agent whose daemon is dead, next to a healthy local agent with the same labels:
every run runs on the healthy agent, none fails.

The docker agent's ``base_url`` is a unix socket with nothing listening (its readiness fails);
it must claim nothing while it cannot run anything, so the runs stay Scheduled for the local
agent. Both are real ``agent start`` processes on a real ``agent server start``.
"""

from __future__ import annotations

import socket
import time

from agent_core.client import APIClient
from tests.chaos.conftest import FAST_AGENT, marker_command, tally, until_final

BURST = 20
LABEL = "chaos-pool"
FIRST_PICK_SECONDS = 2.0


def test_a_docker_agent_with_a_dead_daemon_claims_nothing_and_a_healthy_agent_runs_every_run(
    start_server, start_agent, homes
):
    server = start_server(f"sqlite:///{homes / 'chaos.db'}")
    dead = homes / "dead-docker.sock"
    # A socket file nothing listens on: connect() is refused, as with a stopped daemon.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(dead))
    markers = homes / "markers"
    markers.mkdir()
    client = APIClient(server.url, retries=5, backoff=0.2)
    flow = client.register_flow("pool", marker_command(markers, seconds=0.2), labels=[LABEL])
    run_ids = [client.create_flow_run(flow_id=flow["id"], labels=[LABEL])["id"] for _ in range(BURST)]
    # The docker agent comes first and has the runs to itself for a while: it must leave them.
    docker_agent = start_agent(
        server.url,
        "--label",
        LABEL,
        "--set",
        f"base_url=unix://{dead}",
        "--set",
        "image=agent-test-busybox:latest",
        name="chaos-docker-dead",
        backend="docker",
        home=homes / "home-a",
        env=FAST_AGENT,
    )
    time.sleep(FIRST_PICK_SECONDS)
    local_agent = start_agent(server.url, "--label", LABEL, name="chaos-local", home=homes / "home-b", env=FAST_AGENT)

    runs = until_final(client, run_ids, 60)
    result = tally(client, runs, run_ids, markers)
    claimed_by_docker = [
        i for i in run_ids if any("chaos-docker-dead" in (s.get("message") or "") for s in client.flow_run_states(i))
    ]
    result.details.append(f"{len(claimed_by_docker)} run(s) claimed by the docker agent")
    client.close()
    result.assert_clean(
        f"--- docker agent ---\n{docker_agent.output()[-3000:]}\n--- local agent ---\n{local_agent.output()[-2000:]}"
    )
