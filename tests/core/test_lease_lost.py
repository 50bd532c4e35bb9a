"""An agent back after its lease expired finds the runs the API recovered no longer its own:
it stops their workloads (never two live attempts of one run), says so, and goes on working."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent_core import Deployment, DeploymentStatus, FlowRun, hookimpl
from agent_core.server.settings import ServerSettings
from agent_core.states import State
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, create_run, run_logs, wait_for_state, wait_until
from tests.core.test_run_events import Recorder

LEASE = 1.0


@pytest.fixture
def short_lease_server(sqlite_url: str) -> Iterator[APIServer]:
    """A real API server whose sweep recovers the runs of an agent silent for over a second."""
    with APIServer(sqlite_url, settings=ServerSettings(agent_lease_seconds=LEASE)) as server:
        yield server


class Workloads(Backend):
    """Workloads per attempt: running until stopped, or ``done`` from attempt ``done_from`` on."""

    def __init__(self, done_from: int = 2) -> None:
        super().__init__()
        self.done_from = done_from
        self.stopped: list[str] = []  # run keys (id-attempt) whose workload was stopped

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment) -> DeploymentStatus:
        if flow_run.key in self.stopped:
            return DeploymentStatus.exited(-15, "terminated")
        if flow_run.attempt >= self.done_from:
            return DeploymentStatus.exited(0)
        return DeploymentStatus.running()

    @hookimpl
    def cancel_deployment(self, flow_run: FlowRun, deployment: Deployment, grace_seconds: float) -> bool:
        self.stopped.append(deployment.platform_id.removeprefix("wl-"))
        return True


class HeldHeartbeat:
    """An extension whose ``heartbeat`` hook holds the heartbeat thread while ``held`` is set,
    so that the agent sends no API heartbeat and its lease runs out while it otherwise works."""

    name = "held-heartbeat"

    def __init__(self) -> None:
        self.held = threading.Event()
        self.release = threading.Event()

    @hookimpl
    def heartbeat(self, agent: Any) -> None:
        if self.held.is_set():
            self.release.wait(30)


def lease_lost_events(recorder: Recorder, run_id: str) -> list[dict[str, Any]]:
    return [call for call in recorder.of(run_id) if call["message"].startswith("lease lost")]


def test_an_agent_back_after_its_lease_stops_the_workload_of_a_run_failed_meanwhile(
    short_lease_server: APIServer, make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    api = short_lease_server.client()
    backend, hold, recorder = Workloads(), HeldHeartbeat(), Recorder()
    run = create_run(api)
    make_agent([backend, hold, recorder], server=short_lease_server, start=True)
    wait_for_state(api, run["id"], "Running")

    hold.held.set()
    lost = wait_for_state(api, run["id"], "Failed", timeout=20)  # the server's sweep
    assert "lease expired" in lost["state"]["message"]
    assert backend.stopped == []
    hold.held.clear()
    hold.release.set()

    wait_until(lambda: backend.stopped == [f"{run['id']}-1"], timeout=20)
    wait_until(lambda: lease_lost_events(recorder, run["id"]), timeout=10)
    assert any("lease of agent" in r.getMessage() and "expired" in r.getMessage() for r in caplog.records)
    wait_until(lambda: any("Lease lost" in e["message"] for e in run_logs(api, run["id"])), timeout=10)
    assert api.get_flow_run(run["id"])["state"]["message"] == lost["state"]["message"]  # left as the API set it


def test_an_agent_back_after_its_lease_goes_on_taking_and_running_work(
    short_lease_server: APIServer, make_agent
) -> None:
    api = short_lease_server.client()
    backend, hold = Workloads(), HeldHeartbeat()
    first = create_run(api)
    make_agent([backend, hold], server=short_lease_server, start=True)
    wait_for_state(api, first["id"], "Running")
    hold.held.set()
    wait_for_state(api, first["id"], "Failed", timeout=20)
    hold.held.clear()
    hold.release.set()
    wait_until(lambda: backend.stopped, timeout=20)

    backend.done_from = 1
    later = create_run(api, flow="later-flow")

    done = wait_for_state(api, later["id"], "Success", timeout=20)
    assert done["agent_id"] == api.get_flow_run(first["id"])["agent_id"]
    alive = {a["name"]: a["alive"] for a in api.list_agents()}
    assert all(alive.values())


def test_a_retried_run_of_an_agent_that_lost_its_lease_runs_its_old_attempt_no_more(
    short_lease_server: APIServer, make_agent
) -> None:
    api = short_lease_server.client()
    backend, hold, recorder = Workloads(done_from=2), HeldHeartbeat(), Recorder()
    # The retry waits a few seconds: an agent without a lease cannot keep what it claims.
    run = create_run(api, max_retries=1, retry_delay_seconds=4)
    make_agent([backend, hold, recorder], server=short_lease_server, start=True)
    wait_for_state(api, run["id"], "Running")

    hold.held.set()
    wait_until(lambda: api.get_flow_run(run["id"])["attempt"] == 2, timeout=20)  # failed by the sweep, retried
    hold.held.clear()
    hold.release.set()

    done = wait_for_state(api, run["id"], "Success", timeout=30)
    assert done["attempt"] == 2
    assert backend.stopped == [f"{run['id']}-1"]
    assert lease_lost_events(recorder, run["id"])[0]["new"] == State.FAILED
    assert backend.deployed_ids() == [run["id"], run["id"]]  # attempt 1, then attempt 2, once each


def test_giving_up_an_old_attempt_leaves_the_newer_attempt_tracked(make_agent, sqlite_api) -> None:
    backend = Workloads()
    agent = make_agent([backend], prepare=True)
    first = FlowRun.from_api(create_run(sqlite_api))
    agent.monitor.track(first, Deployment("x", f"wl-{first.key}"))
    (old,) = agent.monitor.snapshot()
    second = dataclasses.replace(first, attempt=2)
    agent.monitor.track(second, Deployment("x", f"wl-{second.key}"))  # deployed after the lease ran out

    assert agent.lease.give_up(old, second) is False  # let go already
    assert [item.run.attempt for item in agent.monitor.snapshot()] == [2]
