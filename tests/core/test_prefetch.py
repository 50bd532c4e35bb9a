"""Prefetch and on-time start: runs due within ``prefetch_seconds`` are fetched early and
deployed at their start time, measured on the injected clock."""

from __future__ import annotations

import threading

import pytest

from agent_core.client import APIClient
from tests.core.conftest import Backend, FakeClock, create_run, run_state, wait_until


def test_a_run_due_in_5_s_is_fetched_and_claimed_after_waiting_5_s(
    make_agent, clock: FakeClock, sqlite_api: APIClient
) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    start = clock.now().add(seconds=5)
    run = create_run(sqlite_api, scheduled_start_time=start)
    seen_while_waiting: list[str] = []

    def on_wait(timeout: float) -> None:
        if threading.current_thread().name.startswith("deploy"):
            seen_while_waiting.append(run_state(sqlite_api, run["id"]))

    clock.on_wait = on_wait

    assert agent.poll_once() is True
    wait_until(lambda: backend.deployed)

    (waited,) = clock.waits_of("deploy")
    assert waited == pytest.approx(5.0, abs=0.01)
    assert seen_while_waiting == ["Scheduled"]  # the claim came after the wait
    assert clock.now() >= start
    assert run_state(sqlite_api, run["id"]) == "Submitted"


def test_a_run_due_in_20_s_is_not_fetched(make_agent, clock: FakeClock, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    run = create_run(sqlite_api, scheduled_start_time=clock.now().add(seconds=20))

    assert agent.poll_once() is False

    assert not agent.is_in_flight(run["id"])
    assert agent.pool.pending == 0
    assert backend.deployed == []
    assert run_state(sqlite_api, run["id"]) == "Scheduled"


def test_a_run_is_fetched_once_it_is_within_the_prefetch_window(
    make_agent, clock: FakeClock, sqlite_api: APIClient
) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    create_run(sqlite_api, scheduled_start_time=clock.now().add(seconds=20))
    assert agent.poll_once() is False

    clock.advance(12)

    assert agent.poll_once() is True
    wait_until(lambda: backend.deployed)
    assert clock.waits_of("deploy") == [pytest.approx(8.0, abs=0.01)]


def test_a_run_already_due_is_deployed_without_waiting(make_agent, clock: FakeClock, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    create_run(sqlite_api, scheduled_start_time=clock.now().subtract(seconds=30))

    assert agent.poll_once() is True
    wait_until(lambda: backend.deployed)

    assert clock.waits_of("deploy") == []
