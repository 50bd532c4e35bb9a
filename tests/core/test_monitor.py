"""The monitor thread: ``check_deployment`` answers become run states; cancellation goes
through ``cancel_deployment``."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from agent_core import DeploymentStatus, FlowRun, hookimpl
from agent_core.client import APIClient
from agent_core.engine.monitor import CHECK_CHUNK, MIN_PAUSE
from tests.core.conftest import (
    Backend,
    FakeClock,
    MonitoredBackend,
    create_run,
    run_logs,
    wait_for_state,
    wait_until,
)


def history(client: APIClient, run_id: str) -> list[str]:
    return [s["type"] for s in client.flow_run_states(run_id)]


def error_logs(client: APIClient, run_id: str) -> list[str]:
    return [e["message"] for e in run_logs(client, run_id) if e["level"] == "ERROR"]


def test_a_running_workload_marks_the_run_running(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    make_agent([MonitoredBackend()], start=True)

    wait_for_state(sqlite_api, run["id"], "Running")

    assert history(sqlite_api, run["id"]) == ["Scheduled", "Submitted", "Running"]


def test_exit_code_0_marks_the_run_success(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)
    make_agent([backend], start=True)

    wait_for_state(sqlite_api, run["id"], "Success")

    assert history(sqlite_api, run["id"]) == ["Scheduled", "Submitted", "Running", "Success"]


def test_exit_code_3_fails_the_run_with_the_code_and_output_tail_in_message_and_logs(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = MonitoredBackend(output=[f"out-{i:02d}" for i in range(1, 26)] + ["ZeroDivisionError: boom"])
    run = create_run(sqlite_api)
    backend.statuses[run["id"]] = DeploymentStatus.exited(3)
    make_agent([backend], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    message = failed["state"]["message"]
    assert "code 3" in message
    assert "out-25" in message and "ZeroDivisionError: boom" in message
    logged = wait_until(lambda: error_logs(sqlite_api, run["id"]))
    assert any("code 3" in m and "ZeroDivisionError: boom" in m for m in logged)


def test_a_missing_workload_fails_the_run(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    backend.statuses[run["id"]] = DeploymentStatus.missing("container was removed")
    make_agent([backend], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert "container was removed" in failed["state"]["message"]


def test_a_pending_workload_leaves_the_run_submitted(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    backend.statuses[run["id"]] = DeploymentStatus.pending("pulling image")
    make_agent([backend], start=True)

    wait_until(lambda: backend.checks >= 5)

    assert history(sqlite_api, run["id"]) == ["Scheduled", "Submitted"]


def test_without_check_deployment_the_run_stays_submitted(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    run = create_run(sqlite_api)
    make_agent([Backend()], start=True)

    wait_until(lambda: any("no check_deployment" in r.getMessage() for r in caplog.records))
    wait_until(lambda: run_logs(sqlite_api, run["id"]))  # deployed and logged

    assert history(sqlite_api, run["id"]) == ["Scheduled", "Submitted"]


def test_check_deployment_raising_is_retried_on_the_next_round(make_agent, sqlite_api: APIClient) -> None:
    class Flaky(MonitoredBackend):
        @hookimpl
        def check_deployment(self, flow_run: FlowRun) -> DeploymentStatus:
            self.checks += 1
            if self.checks <= 2:
                raise ConnectionError("platform API hiccup")
            return DeploymentStatus.exited(0)

    backend = Flaky()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)

    wait_for_state(sqlite_api, run["id"], "Success")

    assert backend.checks >= 3


def test_a_cancelled_run_is_stopped_with_the_grace_period_and_marked_cancelled(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    make_agent([backend], start=True, cancel_grace_seconds=2.5)
    wait_for_state(sqlite_api, run["id"], "Running")

    sqlite_api.cancel_flow_run(run["id"])

    wait_for_state(sqlite_api, run["id"], "Cancelled")
    assert backend.cancels == [(run["id"], 2.5)]
    assert history(sqlite_api, run["id"])[-2:] == ["Cancelling", "Cancelled"]


def test_a_backend_that_cannot_stop_the_workload_is_asked_again(make_agent, sqlite_api: APIClient) -> None:
    class Stubborn(MonitoredBackend):
        @hookimpl
        def cancel_deployment(self, flow_run: FlowRun, grace_seconds: float) -> bool:
            self.cancels.append((flow_run.id, grace_seconds))
            return len(self.cancels) >= 3

    backend = Stubborn()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)
    wait_for_state(sqlite_api, run["id"], "Running")

    sqlite_api.cancel_flow_run(run["id"])

    wait_for_state(sqlite_api, run["id"], "Cancelled")
    assert len(backend.cancels) == 3


def test_the_monitor_thread_calls_check_deployment(make_agent, sqlite_api: APIClient) -> None:
    threads: set[str] = set()

    class Recording(MonitoredBackend):
        @hookimpl
        def check_deployment(self, flow_run: FlowRun, deployment: Any) -> DeploymentStatus:
            threads.add(threading.current_thread().name)
            return DeploymentStatus.exited(0)

    run = create_run(sqlite_api)
    make_agent([Recording()], start=True)
    wait_for_state(sqlite_api, run["id"], "Success")

    assert threads == {"monitor"}


def test_a_failed_run_without_deployment_logs_has_just_the_code(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    class NoLogs(Backend):
        @hookimpl
        def check_deployment(self, flow_run: FlowRun) -> DeploymentStatus:
            return DeploymentStatus.exited(2, "OOMKilled")

    run = create_run(sqlite_api)
    make_agent([NoLogs()], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert failed["state"]["message"] == "Exited with code 2 (OOMKilled)"


def test_a_run_cancelled_while_deploy_flow_runs_is_stopped_once_deployed(make_agent, sqlite_api: APIClient) -> None:
    entered, release = threading.Event(), threading.Event()

    class Slow(MonitoredBackend):
        @hookimpl
        def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Any:
            entered.set()
            release.wait(10)
            return super().deploy_flow(flow_run=flow_run, run_config=run_config, agent=agent)

    backend = Slow()
    run = create_run(sqlite_api)
    make_agent([backend], start=True)
    assert entered.wait(5)

    sqlite_api.cancel_flow_run(run["id"])  # Submitted -> Cancelling while deploy_flow is busy
    wait_for_state(sqlite_api, run["id"], "Cancelling")
    release.set()

    wait_for_state(sqlite_api, run["id"], "Cancelled")
    assert [run_id for run_id, _ in backend.cancels] == [run["id"]]


def test_a_failed_run_with_retries_left_is_deployed_again_as_attempt_2(make_agent, sqlite_api: APIClient) -> None:
    class FirstAttemptFails(MonitoredBackend):
        @hookimpl
        def check_deployment(self, flow_run: FlowRun) -> DeploymentStatus:
            return DeploymentStatus.exited(1 if flow_run.attempt == 1 else 0)

    backend = FirstAttemptFails()
    run = create_run(sqlite_api, max_retries=1)
    make_agent([backend], start=True)

    done = wait_for_state(sqlite_api, run["id"], "Success", timeout=15)
    assert done["attempt"] == 2
    assert [r.key for r in backend.deployed] == [f"{run['id']}-1", f"{run['id']}-2"]


class SlowCheck(MonitoredBackend):
    """Each check takes ``seconds`` of the fake clock."""

    def __init__(self, clock: FakeClock, seconds: float) -> None:
        super().__init__()
        self.clock, self.seconds = clock, seconds

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Any) -> DeploymentStatus:
        self.clock.advance(self.seconds)
        return DeploymentStatus.running()


def test_a_round_longer_than_monitor_interval_is_followed_by_the_next_at_once(
    make_agent, sqlite_api: APIClient, clock: FakeClock
) -> None:
    create_run(sqlite_api)
    make_agent([SlowCheck(clock, 2.5)], start=True, clock=clock, monitor_interval=1.0)

    # Rounds start every monitor_interval: one that took longer is followed after the least pause.
    wait_until(lambda: MIN_PAUSE in clock.waits_of("monitor"))


def test_a_burst_ending_in_one_round_is_written_across_chunks(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    runs = [create_run(sqlite_api) for _ in range(3 * CHECK_CHUNK + 5)]
    agent = make_agent([backend], start=True)
    wait_until(lambda: agent.monitor.count == len(runs), timeout=60)
    for run in runs:
        backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    for run in runs:
        wait_for_state(sqlite_api, run["id"], "Success", timeout=60)
        assert history(sqlite_api, run["id"])[-2:] == ["Running", "Success"]
