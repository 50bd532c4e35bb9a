"""A workload running as ``deploy_flow`` returns (``Deployment(running=True)``): the run is marked
Running in the request that records its deployment."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agent_core import Deployment, DeploymentStatus, FlowRun, hookimpl
from agent_core.client import APIClient
from agent_core.server import endpoints
from agent_core.testing.servers import APIServer
from tests.core.conftest import MonitoredBackend, create_run, wait_for_state, wait_until

DEPLOYMENT_ROUTE = "/api/flow-runs/{id}/deployment"


class StartsRunning(MonitoredBackend):
    def __init__(self) -> None:
        super().__init__()
        self.checked = threading.Event()

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Any:
        super().deploy_flow(flow_run=flow_run, run_config=run_config, agent=agent)
        return Deployment(self.name, f"wl-{flow_run.key}", f"workload wl-{flow_run.key}", running=True)

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment) -> DeploymentStatus:
        self.checked.set()
        return super().check_deployment(flow_run=flow_run, deployment=deployment)


def states(client: APIClient, run_id: str) -> list[str]:
    return [s["type"] for s in client.flow_run_states(run_id)]


def test_a_run_deployed_running_is_marked_running_with_its_deployment_in_one_request(
    make_agent, sqlite_server: APIServer, sqlite_api: APIClient
) -> None:
    run = create_run(sqlite_api)
    make_agent([StartsRunning()], start=True)

    running = wait_for_state(sqlite_api, run["id"], "Running")

    assert running["deployment"]["platform_id"] == f"wl-{run['id']}-1"
    assert "running" not in running["deployment"]
    assert states(sqlite_api, run["id"]) == ["Scheduled", "Submitted", "Running"]
    assert sqlite_server.requests_answered("POST", DEPLOYMENT_ROUTE) == 0


def test_a_run_deployed_running_still_ends_through_the_monitor(make_agent, sqlite_api: APIClient) -> None:
    backend = StartsRunning()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)
    wait_for_state(sqlite_api, run["id"], "Running")

    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    wait_for_state(sqlite_api, run["id"], "Success")
    assert states(sqlite_api, run["id"]) == ["Scheduled", "Submitted", "Running", "Success"]


def test_against_a_server_without_state_deployment_the_deployment_is_recorded_alone(
    make_agent, sqlite_server: APIServer, sqlite_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(endpoints, "FEATURES", tuple(f for f in endpoints.FEATURES if f != "state_deployment"))
    backend = StartsRunning()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)

    wait_for_state(sqlite_api, run["id"], "Running")  # by the monitor's first check

    assert backend.checked.is_set()
    assert sqlite_server.requests_answered("POST", DEPLOYMENT_ROUTE) == 1
    assert states(sqlite_api, run["id"]) == ["Scheduled", "Submitted", "Running"]


def test_a_run_asked_to_cancel_while_deploying_running_records_its_deployment_and_is_stopped(
    make_agent, sqlite_api: APIClient
) -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(StartsRunning):
        @hookimpl
        def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Any:
            entered.set()
            release.wait(10)
            return super().deploy_flow(flow_run=flow_run, run_config=run_config, agent=agent)

    backend = Slow()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)
    assert entered.wait(5)
    sqlite_api.cancel_flow_run(run["id"])  # Submitted -> Cancelling: the Running change is stale
    wait_for_state(sqlite_api, run["id"], "Cancelling")
    release.set()

    done = wait_for_state(sqlite_api, run["id"], "Cancelled")

    assert done["deployment"]["platform_id"] == f"wl-{run['id']}-1"
    wait_until(lambda: [run_id for run_id, _ in backend.cancels] == [run["id"]])
    assert "Running" not in states(sqlite_api, run["id"])
