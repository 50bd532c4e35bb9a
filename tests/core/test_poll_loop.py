"""The poll loop: backoff schedule, found work, poke and ``--max-polls``."""

from __future__ import annotations

import threading
import time

import pendulum
import requests

from agent_core.client import APIClient
from agent_core.engine.backoff import POLL_INTERVALS, Backoff
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, run_state, wait_until


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
    agent = make_agent([backend], start=True, long_poll_seconds=0)  # polling with backoff
    # Five empty polls (0.25 + 0.5 + 1 + 2 s of waits): the loop is now in its 4 s wait.
    wait_until(lambda: agent.polls >= 5, timeout=15)
    create_run(sqlite_api)

    poked = time.monotonic()
    agent.poke()
    wait_until(lambda: backend.deployed, timeout=5)

    assert time.monotonic() - poked < 3.0  # well before the 4 s wait would have ended


def test_an_idle_agent_waits_in_one_long_poll_instead_of_polling_again(make_agent) -> None:
    agent = make_agent(start=True)
    wait_until(lambda: agent.polls >= 1)

    time.sleep(1.0)  # polling with backoff would have polled 3 times by now

    assert agent.poller.long_poll_seconds == 30.0
    assert agent.polls == 1


def test_a_new_run_ends_the_long_poll_and_is_deployed_at_once(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], start=True)
    wait_until(lambda: agent.polls >= 1)
    time.sleep(0.3)  # inside the long poll

    created = time.monotonic()
    create_run(sqlite_api)
    wait_until(lambda: backend.deployed, timeout=10)

    assert time.monotonic() - created < 5.0  # not the 30 s the long poll would last
    assert agent.polls <= 3


def requests_to(server: APIServer, method: str, route: str) -> float:
    """How many ``method route`` requests the server answered (from its ``/metrics``)."""
    prefix = f'agent_api_requests_total{{method="{method}",route="{route}"'
    lines = requests.get(f"{server.url}/metrics", timeout=10).text.splitlines()
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def test_an_agent_claims_in_its_poll_without_a_claim_of_its_own(
    make_agent, sqlite_server: APIServer, sqlite_api: APIClient
) -> None:
    backend = Backend()
    agent = make_agent([backend], start=True)
    wait_until(lambda: agent.polls >= 1)
    run = create_run(sqlite_api)

    wait_until(lambda: backend.deployed, timeout=10)

    assert run_state(sqlite_api, run["id"]) == "Submitted"
    assert requests_to(sqlite_server, "POST", "/api/flow-runs/{id}/state") == 0  # no claim of its own


def test_a_poke_ends_the_long_poll_wait_with_a_poll_at_once(make_agent) -> None:
    agent = make_agent(start=True)
    wait_until(lambda: agent.polls >= 1)
    time.sleep(0.3)  # inside the long poll

    agent.poke()

    wait_until(lambda: agent.polls >= 2, timeout=3)  # not the 30 s the long poll lasts


def test_an_agent_holding_a_run_fetched_early_does_not_spin(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], start=True)
    wait_until(lambda: agent.polls >= 1)
    create_run(sqlite_api, scheduled_start_time=pendulum.now("UTC").add(seconds=4))
    wait_until(lambda: agent.in_flight_count == 1)  # fetched early, waiting for its start time
    polls = agent.polls

    time.sleep(2.0)

    assert agent.polls - polls <= 3  # an answer at once on every poll would be hundreds


def test_a_run_fetched_early_is_deployed_at_its_start_time(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend], start=True)
    wait_until(lambda: agent.polls >= 1)
    start = pendulum.now("UTC").add(seconds=3)
    create_run(sqlite_api, scheduled_start_time=start)

    wait_until(lambda: backend.deployed, timeout=15)

    assert pendulum.now("UTC") >= start


def test_runs_claimed_by_a_poll_whose_answer_was_lost_are_read_back_and_deployed(
    make_agent, sqlite_server: APIServer, clock: FakeClock
) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    run = create_run(sqlite_server.client())
    # What the server did for a claiming poll whose answer never arrived.
    tenant = sqlite_server.store.ensure_tenant()
    (claimed,) = sqlite_server.store.claim(tenant, agent.id, agent.labels, pendulum.now("UTC"), 10)
    agent.poller._claims_unknown = True

    assert agent.poll_once() is True
    wait_until(lambda: backend.deployed_ids() == [run["id"]])
    assert claimed["id"] == run["id"]
