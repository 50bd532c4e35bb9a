"""What the agent-kill tests share: a burst of marker runs on a server process, and its agents.

An agent SIGKILLed at claim, at deploy and at run, then restarted in time or never again.

Real processes: ``agent server start``, ``agent start`` (local backend), shell workloads that
leave a marker per attempt. Without a restart a short ``[server] agent_lease_seconds`` (3 s)
governs: the runs of the silent agent are recovered by the server (claimed but not deployed:
back to Scheduled; deployed or Running: Failed, then retried) and another agent runs them.
With a restart under the same name before the lease runs out, the agent takes its runs back
(re-attach, or hand back what it never launched) and nothing runs twice.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent_core.client import APIClient
from tests.chaos.conftest import (
    FAST_AGENT,
    ServerProcess,
    marker_command,
    tally,
    until_final,
    wait_for_runs,
)

BURST = 20
WORKERS = "4"
SHORT_LEASE = 3.0
# Long enough that a restart (a new Python process: 1-3 s on a loaded machine) is in time.
LONG_LEASE = 60.0
FINISH_WITHIN = 60.0


def submitted_undeployed(runs: dict) -> list[str]:
    return [i for i, r in runs.items() if r["state"]["type"] == "Submitted" and not r["deployment"]]


def deployed(runs: dict) -> list[str]:
    return [i for i, r in runs.items() if r["deployment"]]


def running(runs: dict) -> list[str]:
    return [i for i, r in runs.items() if r["state"]["type"] == "Running"]


def running_and_none_deploying(runs: dict, at_least: int) -> bool:
    """``at_least`` runs Running, and every other one deployed or finished: no deploy in flight.

    A run marked Running with its deployment (local's ``Deployment(running=True)``) is Running
    while the deploy threads still start the others; a kill then lands mid-deploy, which the
    mid-deploy tests cover.
    """
    settled = all(r["deployment"] or r["state"]["type"] in ("Success", "Failed", "Cancelled") for r in runs.values())
    return settled and len(running(runs)) >= at_least


class Burst:
    """``BURST`` runs of the marker workload on a server process, and the agents that run them."""

    def __init__(
        self, server: ServerProcess, start_agent: Callable, tmp_path: Path, seconds: float, retries: int = 1
    ) -> None:
        self.server = server
        self.start_agent = start_agent
        self.tmp_path = tmp_path
        self.markers = tmp_path / "markers"
        self.markers.mkdir()
        self.client = APIClient(server.url, retries=5, backoff=0.2)
        flow = self.client.register_flow("chaos", marker_command(self.markers, seconds=seconds))
        self.run_ids = [
            self.client.create_flow_run(flow_id=flow["id"], max_retries=retries)["id"] for _ in range(BURST)
        ]
        self.agents: list = []

    def agent(self, name: str, *, home: str = "home-a", env: dict[str, str] | None = None):
        agent = self.start_agent(
            self.server.url,
            name=name,
            home=self.tmp_path / home,
            env={**FAST_AGENT, "AGENT__AGENT__MAX_WORKERS": WORKERS, **(env or {})},
        )
        self.agents.append(agent)
        return agent

    def wait(self, condition: Callable[[dict], bool], what: str, timeout: float = 30.0) -> dict:
        return wait_for_runs(self.client, self.run_ids, condition, timeout, what, self.outputs)

    def outputs(self) -> str:
        return (
            "\n".join(f"--- {a.name} ---\n{a.output()[-2500:]}\n{a.errors()[-1000:]}" for a in self.agents)
            + f"\n--- server ---\n{self.server.output()[-2000:]}"
        )

    def finish(self, *, retry_allowed: bool) -> None:
        runs = until_final(self.client, self.run_ids, FINISH_WITHIN)
        result = tally(self.client, runs, self.run_ids, self.markers, retry_allowed=retry_allowed)
        result.assert_clean(self.outputs())
        self.client.close()
