"""A restarted agent re-attaches to the workloads it started instead of orphaning or
duplicating them (``list_deployments`` and the deployment recorded on each run)."""

from __future__ import annotations

from typing import Any

import pytest

from agent_core import Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.client import APIClient
from tests.core.conftest import Backend, MonitoredBackend, create_run, run_logs, wait_for_state, wait_until


class Platform(MonitoredBackend):
    """A backend whose platform outlives the agent: ``live`` is what ``list_deployments`` finds."""

    def __init__(self, live: list[LiveDeployment] | None = None, enumerate_: bool = True) -> None:
        super().__init__()
        self.live = live or []
        self.enumerate = enumerate_

    @hookimpl
    def list_deployments(self, agent: Any) -> list[LiveDeployment] | None:
        return list(self.live) if self.enumerate else None


def deploy_then_stop(make_agent, backend: Backend, run_id: str, **settings: Any) -> None:
    """A first life of agent "worker": deploy ``run_id`` and stop."""
    agent = make_agent([backend], name="worker", **settings)
    thread = make_agent.start(agent)
    wait_until(lambda: run_id in backend.deployed_ids())
    wait_until(lambda: agent.pool.pending == 0)
    agent.stop()
    thread.join(10)


@pytest.mark.parametrize("enumerate_", [True, False], ids=["listed", "recorded-on-run"])
def test_a_restarted_agent_reattaches_instead_of_deploying_again(
    make_agent, sqlite_api: APIClient, enumerate_: bool
) -> None:
    run = create_run(sqlite_api)
    deploy_then_stop(make_agent, Platform(), run["id"])  # left Submitted or Running
    deployment = Deployment.from_dict(sqlite_api.get_flow_run(run["id"])["deployment"])

    second = Platform([LiveDeployment(run["id"], 1, deployment)], enumerate_=enumerate_)
    second.statuses[run["id"]] = DeploymentStatus.exited(0)
    make_agent([second], name="worker", start=True)

    wait_for_state(sqlite_api, run["id"], "Success")
    assert second.deployed == []
    wait_until(lambda: any("re-attached" in e["message"] for e in run_logs(sqlite_api, run["id"])))


def test_a_run_claimed_but_never_deployed_is_handed_back_on_restart(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    # A first life that claimed the run and died before deploy_flow returned.
    first = make_agent([Backend()], name="worker")
    first.connect()
    assert first.claim(FlowRun.from_api(run)) is not None

    backend = Platform()
    make_agent([backend], name="worker", start=True)

    # Handed back (Submitted -> Scheduled, same attempt), then taken like any Scheduled run.
    wait_until(lambda: run["id"] in backend.deployed_ids())
    history = sqlite_api.flow_run_states(run["id"])
    assert [entry["type"] for entry in history][:4] == ["Scheduled", "Submitted", "Scheduled", "Submitted"]
    assert history[2]["message"] == "Agent worker restarted before deploying this run: handed back"
    assert [entry["attempt"] for entry in history] == [1] * len(history)


def test_a_run_deployed_with_a_plain_string_is_left_alone_on_restart(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    deploy_then_stop(make_agent, Backend(behaviour=lambda **_: "job 17 on the mainframe"), run["id"])

    second = Backend()
    agent = make_agent([second], name="worker", start=True)
    wait_until(lambda: agent.polls >= 1)  # reconciled, then polled

    assert sqlite_api.get_flow_run(run["id"])["state"]["type"] == "Submitted"
