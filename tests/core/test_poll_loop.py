"""The poll loop: backoff schedule, found work, poke and ``--max-polls``."""

from __future__ import annotations

import threading
import time

from agent_core.client import APIClient
from agent_core.engine.backoff import POLL_INTERVALS, Backoff
from tests.core.conftest import Backend, FakeClock, create_run, wait_until


def test_empty_polls_back_off_0_25_0_5_1_2_4_8_then_10_seconds(make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True, max_polls=10)

    agent.poll_loop()

    waits = clock.waits_of("MainThread")
    assert waits[:9] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert len(waits) <= 10


def test_found_work_polls_again_at_once_and_restarts_the_schedule(
    make_agent, clock: FakeClock, sqlite_api: APIClient
) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True, max_polls=6)
    timeline: list[tuple[int, float]] = []  # (polls so far, wait asked for) on the loop's thread

    def on_wait(timeout: float) -> None:
        if threading.current_thread().name != "MainThread":
            return
        timeline.append((agent.polls, timeout))
        if agent.polls == 3:
            create_run(sqlite_api)  # found by the 4th poll

    clock.on_wait = on_wait
    agent.poll_loop()

    # The 4th poll found the run: no wait after it, then the schedule starts over at 0.25 s.
    assert timeline == [(1, 0.25), (2, 0.5), (3, 1.0), (5, 0.25), (6, 0.5)]
    wait_until(lambda: backend.deployed)


def test_backoff_resets_to_the_first_interval_after_work() -> None:
    backoff = Backoff()
    assert [backoff.next_delay(False) for _ in range(9)] == [*POLL_INTERVALS, 10.0, 10.0]
    assert backoff.next_delay(True) == 0.0
    assert backoff.next_delay(False) == 0.25


def test_max_polls_is_honoured_by_poll_loop(make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True, max_polls=3)

    agent.poll_loop()

    assert agent.polls == 3


def test_start_returns_by_itself_after_max_polls(make_agent) -> None:
    agent = make_agent(max_polls=2)
    thread = make_agent.start(agent)

    thread.join(10)

    assert not thread.is_alive()
    assert agent.polls == 2
    assert agent.name not in make_agent.errors


def test_poke_wakes_the_poll_loop_at_once(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], start=True)
    # Four empty polls (0.25 + 0.5 + 1 s of waits): the loop is now in its 2 s wait.
    wait_until(lambda: agent.polls >= 4, timeout=5)
    time.sleep(0.2)
    create_run(sqlite_api)

    poked = time.monotonic()
    agent.poke()
    wait_until(lambda: backend.deployed, timeout=1.5)

    assert time.monotonic() - poked < 0.5
