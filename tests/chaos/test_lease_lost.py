"""An agent frozen (SIGSTOP) past its lease while its runs run: the server fails and retries
them, another agent runs the retries; when the frozen agent wakes (SIGCONT) it finds those runs
no longer its own, stops their workloads, says so, and goes on working."""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

from agent_core.client import APIClient
from tests.chaos.bursts import SHORT_LEASE, WORKERS
from tests.chaos.conftest import FAST_AGENT, tally, until_final, wait_for_runs
from tests.e2e.conftest import group_members, run_dir, wait_until

RUNS = 6


def first_attempt_hangs(markers: Path) -> str:
    """A marker per attempt (see ``marker_command``); the first attempt then sleeps for good,
    later ones end at once: only a stopped first attempt lets its run end Success once."""
    script = 'touch "$0/$AGENT_FLOW_RUN_ID.$AGENT_FLOW_RUN_ATTEMPT.$$"; '
    script += 'if [ "$AGENT_FLOW_RUN_ATTEMPT" = 1 ]; then sleep 600; fi'
    return shlex.join(["sh", "-c", script, str(markers)])


def test_an_agent_woken_after_its_lease_stops_the_workloads_of_its_recovered_runs_and_goes_on(
    sqlite_url, start_server, start_agent, homes
):
    server = start_server(sqlite_url, lease=SHORT_LEASE)
    client = APIClient(server.url, retries=5, backoff=0.2)
    markers = homes / "markers"
    markers.mkdir()
    flow = client.register_flow("chaos-lease", first_attempt_hangs(markers))
    run_ids = [client.create_flow_run(flow_id=flow["id"], max_retries=1)["id"] for _ in range(RUNS)]
    env = {**FAST_AGENT, "AGENT__AGENT__MAX_WORKERS": WORKERS}
    frozen = start_agent(server.url, name="chaos-a", home=homes / "home-a", env=env)
    agents = [frozen]

    def outputs() -> str:
        return "\n".join(f"--- {a.name} ---\n{a.output()[-3000:]}\n{a.errors()[-1000:]}" for a in agents)

    wait_for_runs(
        client, run_ids, lambda runs: all(r["state"]["type"] == "Running" for r in runs.values()), 60, "all Running"
    )
    groups = [int((run_dir(frozen.home, run_id) / "pid").read_text()) for run_id in run_ids]

    frozen.send(signal.SIGSTOP)
    wait_for_runs(
        client, run_ids, lambda runs: all(r["attempt"] == 2 for r in runs.values()), 60, "all failed and retried"
    )
    agents.append(start_agent(server.url, name="chaos-b", home=homes / "home-b", env=env))
    frozen.send(signal.SIGCONT)

    # Woken: the first attempts' workloads are stopped, while the other agent runs the retries.
    wait_until(
        lambda: not any(group_members(g) for g in groups), 40, message=lambda: f"first attempts stopped\n{outputs()}"
    )
    wait_until(lambda: "lease of agent chaos-a expired" in frozen.output() + frozen.errors(), 20, message=outputs)
    runs = until_final(client, run_ids, 60)
    tally(client, runs, run_ids, markers, retry_allowed=True).assert_clean(outputs())

    # It goes on working: with the other agent gone, it runs a new run itself.
    agents[1].end()
    later = client.create_flow_run(flow_id=flow["id"])  # a first attempt: sleeps, so cancel it once Running
    wait_for_runs(client, [later["id"]], lambda r: r[later["id"]]["state"]["type"] == "Running", 60, "new run Running")
    (agent_a,) = [a for a in client.list_agents() if a["name"] == "chaos-a"]
    assert client.get_flow_run(later["id"])["agent_id"] == agent_a["id"]
    assert agent_a["alive"]
    client.cancel_flow_run(later["id"])
    wait_for_runs(client, [later["id"]], lambda r: r[later["id"]]["state"]["type"] == "Cancelled", 60, "cancelled")
    client.close()
