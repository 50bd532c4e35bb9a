"""The API server SIGKILLed mid-burst while deploys fail, then started again: every run ends,
none is left Submitted, none runs twice.

Deploys are held by the gate while the server is killed, then let go during the outage: the
runs whose command does not exist fail to deploy while the API is away (the Failed state
cannot be written then), the others start their workloads (their deployment cannot be
recorded then). When the server is back every state must reach it.
"""

from __future__ import annotations

import time

from agent_core.client import APIClient
from tests.chaos.bursts import submitted_undeployed
from tests.chaos.conftest import (
    FAST_AGENT,
    Gate,
    marker_command,
    tally,
    until_final,
    wait_for_runs,
)

BURST = 30
WORKERS = 4
OUTAGE_SECONDS = 3.0
FINISH_WITHIN = 40.0


def test_a_burst_with_failing_deploys_survives_the_api_being_killed_and_no_run_is_left_submitted(
    postgres_url, start_server, start_agent, gate: Gate, homes
):
    server = start_server(postgres_url)
    markers = homes / "markers"
    markers.mkdir()
    client = APIClient(server.url, retries=5, backoff=0.2)
    good = client.register_flow("good", marker_command(markers, seconds=0.3))
    # Fails in the deploy itself, after the gate (the executable is looked up last).
    bad = client.register_flow("bad", "/nonexistent/chaos-missing-command")
    run_ids, bad_ids = [], []
    for i in range(BURST):
        flow = bad if i % 2 else good
        run_id = client.create_flow_run(flow_id=flow["id"])["id"]
        run_ids.append(run_id)
        if flow is bad:
            bad_ids.append(run_id)
    agent = start_agent(
        server.url,
        name="chaos-api-killed",
        home=homes / "home-a",
        env={**FAST_AGENT, "AGENT__AGENT__MAX_WORKERS": str(WORKERS), **gate.env()},
    )

    def outputs() -> str:
        return f"--- agent ---\n{agent.output()[-3000:]}\n--- server ---\n{server.output()[-2000:]}"

    wait_for_runs(client, run_ids, lambda runs: len(submitted_undeployed(runs)) >= WORKERS, 30, "claims held", outputs)

    server.kill()
    gate.open()  # the held deploys go on (and half of them fail) while the API is away
    time.sleep(OUTAGE_SECONDS)
    server.start()

    runs = until_final(client, run_ids, FINISH_WITHIN)
    result = tally(client, runs, run_ids, markers, expected_failed=bad_ids)
    client.close()
    result.assert_clean(outputs())
