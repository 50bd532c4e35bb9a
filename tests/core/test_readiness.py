"""``Agent.readiness()`` and ``Agent.liveness()``, and the read-only figures health and metrics read."""

from __future__ import annotations

import threading
from typing import Any

from agent_core import CheckResult, hookimpl
from agent_core.client import APIClient
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, wait_until


class Checked(Backend):
    """A backend whose preflight passes while ``ok`` is true."""

    def __init__(self, ok: bool = True) -> None:
        super().__init__()
        self.ok = ok

    @hookimpl
    def preflight(self, agent: Any) -> list[CheckResult]:
        return [CheckResult("daemon", self.ok, "answers" if self.ok else "the daemon is not answering")]


def test_neither_ready_nor_live_before_the_first_api_contact(make_agent) -> None:
    agent = make_agent()

    assert agent.readiness()[0] is False
    assert agent.liveness() == (False, {"api": "no successful API contact yet"})


def test_a_started_agent_with_a_passing_preflight_is_ready_and_live(make_agent) -> None:
    agent = make_agent([Checked()], start=True)
    wait_until(lambda: agent.polls >= 1)

    assert agent.readiness() == (True, {})
    assert agent.liveness() == (True, {})


def test_a_failing_preflight_makes_the_agent_not_ready_saying_why(make_agent) -> None:
    agent = make_agent([Checked(ok=False)], start=True)
    wait_until(lambda: agent.polls >= 1)

    ok, problems = agent.readiness()

    assert ok is False
    assert "the daemon is not answering" in problems["backend"]
    assert agent.liveness()[0] is True  # alive all the same
    assert agent.backend_ready is False


def test_an_unreachable_api_makes_a_connected_agent_not_ready(
    sqlite_server: APIServer, make_agent, clock: FakeClock
) -> None:
    agent = make_agent(clock=clock, prepare=True)
    agent.poll_once()
    assert agent.api_up is True

    sqlite_server.stop()
    agent.poll_once()

    assert agent.api_up is False
    assert "unreachable" in agent.readiness()[1]["api"]


def test_a_stopping_agent_is_not_ready(make_agent) -> None:
    agent = make_agent([Checked()], start=True)
    wait_until(lambda: agent.readiness()[0])

    agent.stop()

    assert "stopping" in agent.readiness()[1]


def test_polls_and_poll_errors_count_polls_and_failed_ones(
    sqlite_server: APIServer, make_agent, clock: FakeClock
) -> None:
    agent = make_agent(clock=clock, prepare=True)
    agent.poll_once()
    sqlite_server.stop()
    agent.poll_once()

    assert (agent.polls, agent.poll_errors) == (2, 1)


def test_in_flight_count_counts_the_runs_being_deployed(make_agent, sqlite_api: APIClient) -> None:
    release = threading.Event()
    backend = Backend(behaviour=lambda **_: release.wait(30) and "deployed")
    agent = make_agent([backend], start=True)
    create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())

    try:
        assert agent.in_flight_count == 1
    finally:
        release.set()
    wait_until(lambda: agent.in_flight_count == 0)
