"""``Agent.readiness()`` and ``Agent.liveness()``, and the read-only figures health and metrics read."""

from __future__ import annotations

import threading
from typing import Any

from agent_core import CheckResult, hookimpl
from agent_core.client import APIClient
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, run_state, wait_until


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


# --- readiness gating: an agent claims only what it can run ----------------------------------


class Raising(Backend):
    """A backend whose preflight raises instead of answering."""

    @hookimpl
    def preflight(self, agent: Any) -> list[CheckResult]:
        raise RuntimeError("cannot tell")


def test_an_agent_whose_preflight_fails_claims_nothing(make_agent, sqlite_api: APIClient) -> None:
    backend = Checked(ok=False)
    agent = make_agent([backend], start=True)
    run = create_run(sqlite_api)
    polls = agent.polls
    wait_until(lambda: agent.polls >= polls + 3)

    assert backend.deployed_ids() == []
    assert run_state(sqlite_api, run["id"]) == "Scheduled"


def test_an_agent_claims_again_once_its_preflight_passes(make_agent, sqlite_api: APIClient) -> None:
    backend = Checked(ok=False)
    agent = make_agent([backend], start=True, readiness_interval=0.2)
    run = create_run(sqlite_api)
    wait_until(lambda: agent.polls >= 2)
    assert backend.deployed_ids() == []

    backend.ok = True

    assert wait_until(lambda: backend.deployed_ids() == [run["id"]], timeout=30)
    assert agent.readiness() == (True, {})


def test_a_preflight_that_raises_counts_as_failing(make_agent, sqlite_api: APIClient) -> None:
    backend = Raising()
    agent = make_agent([backend], start=True)
    create_run(sqlite_api)
    wait_until(lambda: agent.polls >= 2)

    ok, problems = agent.readiness()

    assert ok is False
    assert "raised RuntimeError: cannot tell" in problems["backend"]
    assert backend.deployed_ids() == []


def test_a_failing_preflight_is_logged_once_not_at_every_check(make_agent, caplog) -> None:
    backend = Checked(ok=False)
    checks = 0

    def counted(agent: Any) -> list[CheckResult]:
        nonlocal checks
        checks += 1
        return [CheckResult("daemon", False, "the daemon is not answering")]

    backend.preflight = hookimpl(counted)  # type: ignore[method-assign]
    make_agent([backend], start=True, readiness_interval=0.1)
    wait_until(lambda: checks >= 10)

    said = [r for r in caplog.records if "not ready: claiming no runs" in r.getMessage()]

    assert len(said) == 1
