"""A run claimed but never launched goes back to the queue (Submitted -> Scheduled, with a
message) instead of failing: here, one still deploying when a stopping agent's drain runs out."""

from __future__ import annotations

import threading
from typing import Any

from agent_core import Deployment, FlowRun, hookimpl
from agent_core.client import APIClient
from tests.core.conftest import MonitoredBackend, create_run, wait_until

HANDED_BACK = "stopped before deploying this run (drain timeout): handed back"


class StuckDeploy(MonitoredBackend):
    """``deploy_flow`` waits for ``release`` (a slow image pull), then starts the workload."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        self.entered.set()
        self.release.wait(30)
        self.returned.set()
        return Deployment(self.name, f"wl-{flow_run.key}", info=f"workload wl-{flow_run.key}")


def stop_during_the_deploy(make_agent, backend: StuckDeploy) -> None:
    agent = make_agent([backend], drain_timeout=0.5)
    thread = make_agent.start(agent)
    assert backend.entered.wait(10)
    agent.stop()
    thread.join(20)
    assert not thread.is_alive()


def test_a_run_still_deploying_at_the_drain_deadline_is_handed_back(make_agent, sqlite_api: APIClient) -> None:
    backend = StuckDeploy()
    run = create_run(sqlite_api)

    stop_during_the_deploy(make_agent, backend)

    current = sqlite_api.get_flow_run(run["id"])
    assert current["state"]["type"] == "Scheduled"
    assert current["state"]["message"].endswith(HANDED_BACK)
    assert current["attempt"] == 1
    backend.release.set()
    wait_until(lambda: backend.cancels, timeout=10)  # the late deploy is settled before the test ends


def test_what_a_deploy_starts_after_its_run_was_handed_back_is_stopped_and_not_recorded(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = StuckDeploy()
    run = create_run(sqlite_api)
    stop_during_the_deploy(make_agent, backend)

    backend.release.set()

    wait_until(lambda: backend.cancels, timeout=10)
    assert [run_id for run_id, _grace in backend.cancels] == [run["id"]]
    current = sqlite_api.get_flow_run(run["id"])
    assert current["state"]["type"] == "Scheduled"
    assert current["deployment"] is None


def test_what_a_deploy_starts_after_its_run_was_recovered_from_it_is_stopped(make_agent, sqlite_api: APIClient) -> None:
    backend = StuckDeploy()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)
    assert backend.entered.wait(10)
    # Meanwhile the run went back to the queue without this agent (the server's lease recovery).
    claimed = sqlite_api.get_flow_run(run["id"])
    sqlite_api.set_flow_run_state(run["id"], version=claimed["version"], state="Scheduled", message="recovered")

    backend.release.set()

    wait_until(lambda: backend.cancels, timeout=10)
    assert [run_id for run_id, _grace in backend.cancels] == [run["id"]]
    assert sqlite_api.get_flow_run(run["id"])["deployment"] is None
