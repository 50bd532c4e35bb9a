"""Timeouts: a run deployed that never starts, or one that runs too long, is stopped through
``cancel_deployment`` and marked Failed; a Failed run with retries left is retried by the API."""

from __future__ import annotations

import threading
from typing import Any

from agent_core import DeploymentStatus, FlowRun, hookimpl
from agent_core.client import APIClient
from tests.core.conftest import MonitoredBackend, create_run, run_logs, wait_for_state, wait_until


class NeverStarts(MonitoredBackend):
    """Its workloads stay pending (an image that never pulls) until cancelled."""

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Any) -> DeploymentStatus:
        self.checks += 1
        return self.statuses.get(flow_run.id, DeploymentStatus.pending("pulling the image"))


class StartsOnce(NeverStarts):
    """Pending on the first attempt, running (then done) from the second on."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Any) -> DeploymentStatus:
        if flow_run.attempt > 1:
            return DeploymentStatus.exited(0)
        return self.statuses.get(flow_run.id, DeploymentStatus.pending("pulling the image"))


def cancelled_ids(backend: MonitoredBackend) -> list[str]:
    return [run_id for run_id, _grace in backend.cancels]


# --- start timeout -------------------------------------------------------------------------


def test_a_run_deployed_but_not_running_within_the_start_timeout_is_stopped_and_failed(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = NeverStarts()
    run = create_run(sqlite_api)
    make_agent([backend], start=True, start_timeout_seconds=1.0)

    failed = wait_for_state(sqlite_api, run["id"], "Failed", timeout=20)

    assert failed["state"]["message"].startswith("Run did not start within 1s (start_timeout_seconds)")
    assert cancelled_ids(backend) == [run["id"]]
    wait_until(lambda: any("did not start within 1s" in e["message"] for e in run_logs(sqlite_api, run["id"])))


def test_a_run_failed_by_the_start_timeout_is_retried_when_retries_remain(make_agent, sqlite_api: APIClient) -> None:
    backend = StartsOnce()
    run = create_run(sqlite_api, max_retries=1)
    make_agent([backend], start=True, start_timeout_seconds=1.0)

    done = wait_for_state(sqlite_api, run["id"], "Success", timeout=20)

    assert done["attempt"] == 2
    history = [(s["type"], s["message"]) for s in sqlite_api.flow_run_states(run["id"])]
    assert any(kind == "Failed" and "did not start within 1s" in message for kind, message in history)
    assert cancelled_ids(backend) == [run["id"]]


def test_a_start_timeout_of_zero_never_fails_a_run_that_waits_to_start(make_agent, sqlite_api: APIClient) -> None:
    backend = NeverStarts()
    run = create_run(sqlite_api)
    make_agent([backend], start=True, start_timeout_seconds=0)
    wait_until(lambda: backend.checks >= 40, timeout=20)  # 2 s of pending at the tests' 0.05 s interval

    assert sqlite_api.get_flow_run(run["id"])["state"]["type"] == "Submitted"
    assert backend.cancels == []


# --- run timeout ---------------------------------------------------------------------------


def test_a_run_running_past_its_run_configs_timeout_is_stopped_and_failed(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api, run_config={"type": "universal", "timeout_seconds": 1})
    make_agent([backend], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed", timeout=20)

    assert failed["state"]["message"].startswith("Run timed out after 1s (timeout_seconds)")
    assert cancelled_ids(backend) == [run["id"]]
    history = [s["type"] for s in sqlite_api.flow_run_states(run["id"])]
    assert history[-2:] == ["Running", "Failed"]


def test_the_agents_run_timeout_applies_to_runs_whose_run_config_sets_none(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    make_agent([backend], start=True, run_timeout_seconds=1.0)

    failed = wait_for_state(sqlite_api, run["id"], "Failed", timeout=20)

    assert failed["state"]["message"].startswith("Run timed out after 1s (run_timeout_seconds)")
    assert cancelled_ids(backend) == [run["id"]]


def test_the_run_configs_timeout_wins_over_the_agents(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    short = create_run(sqlite_api, run_config={"type": "universal", "timeout_seconds": 1})
    long = create_run(sqlite_api, flow="other-flow", run_config={"type": "universal", "timeout_seconds": 600})
    make_agent([backend], start=True, run_timeout_seconds=2.0)

    wait_for_state(sqlite_api, short["id"], "Failed", timeout=20)
    wait_until(lambda: backend.checks >= 100, timeout=20)  # well past the agent's 2 s

    assert sqlite_api.get_flow_run(long["id"])["state"]["type"] == "Running"
    assert cancelled_ids(backend) == [short["id"]]


def test_a_run_that_ends_within_its_timeout_is_not_touched(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api, run_config={"type": "universal", "timeout_seconds": 30})
    make_agent([backend], start=True)
    wait_for_state(sqlite_api, run["id"], "Running")

    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    done = wait_for_state(sqlite_api, run["id"], "Success")
    assert done["state"]["message"] == "Exited with code 0"
    assert backend.cancels == []
