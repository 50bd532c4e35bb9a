"""The agent's log says how each run ended: Success, Failed with the reason, Cancelled."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from agent_core import DeploymentStatus
from agent_core.client import APIClient
from agent_core.errors import DeploymentError
from tests.core.conftest import Backend, MonitoredBackend, create_run, wait_for_state, wait_until

OUTCOME = re.compile(r"^Flow run (\S+) (\(.*\) )?(finished|failed|was cancelled)")


def outcome_lines(caplog: pytest.LogCaptureFixture, run_id: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if (m := OUTCOME.match(r.getMessage())) and m.group(1) == run_id]


def wait_for_outcome(caplog: pytest.LogCaptureFixture, run_id: str) -> logging.LogRecord:
    """The one outcome line of the run, once the run-events thread logged it."""
    lines = wait_until(lambda: outcome_lines(caplog, run_id))
    assert len(lines) == 1, [r.getMessage() for r in lines]
    return lines[0]


@pytest.fixture(autouse=True)
def _info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="agent")


def test_a_successful_run_is_logged_as_success(make_agent, sqlite_api: APIClient, caplog) -> None:
    backend = MonitoredBackend()
    agent = make_agent([backend], start=True)
    run = create_run(sqlite_api, flow="nightly-etl")
    wait_until(backend.deployed_ids)
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    line = wait_for_outcome(caplog, run["id"])

    assert line.getMessage() == f"Flow run {run['id']} (nightly-etl) finished: Success"
    assert (line.levelno, line.name) == (logging.INFO, agent.logger.name)


def test_a_failed_run_is_logged_as_a_warning_with_the_reason(make_agent, sqlite_api: APIClient, caplog) -> None:
    backend = MonitoredBackend()
    make_agent([backend], start=True)
    run = create_run(sqlite_api, flow="nightly-etl")
    wait_until(backend.deployed_ids)
    backend.statuses[run["id"]] = DeploymentStatus.exited(3)

    line = wait_for_outcome(caplog, run["id"])

    assert line.getMessage() == f"Flow run {run['id']} (nightly-etl) failed: Exited with code 3"
    assert line.levelno == logging.WARNING


def test_a_run_whose_deploy_failed_is_logged_with_the_deploy_error(make_agent, sqlite_api: APIClient, caplog) -> None:
    def fail(**_: Any) -> None:
        raise DeploymentError("image registry.example/etl:9 does not exist")

    make_agent([Backend(behaviour=fail)], start=True)
    run = create_run(sqlite_api)

    line = wait_for_outcome(caplog, run["id"])

    assert line.getMessage().endswith("failed: image registry.example/etl:9 does not exist")


def test_a_cancelled_run_is_logged_as_cancelled(make_agent, sqlite_api: APIClient, caplog) -> None:
    backend = MonitoredBackend()
    make_agent([backend], start=True)
    run = create_run(sqlite_api, flow="nightly-etl")
    wait_for_state(sqlite_api, run["id"], "Running")

    sqlite_api.cancel_flow_run(run["id"], "not needed today")
    wait_for_state(sqlite_api, run["id"], "Cancelled")
    line = wait_for_outcome(caplog, run["id"])

    assert line.getMessage().startswith(f"Flow run {run['id']} (nightly-etl) was cancelled")
    assert line.levelno == logging.INFO


def test_an_outcome_line_carries_the_run_id_for_the_json_log(make_agent, sqlite_api: APIClient, caplog) -> None:
    backend = MonitoredBackend()
    make_agent([backend], start=True)
    run = create_run(sqlite_api)
    wait_until(backend.deployed_ids)
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    line = wait_for_outcome(caplog, run["id"])

    assert line.run_id == run["id"]  # type: ignore[attr-defined]
