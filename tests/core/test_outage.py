"""The API going away never ends the agent: it warns, backs off, reports it, and resumes."""

from __future__ import annotations

import logging
import threading

import pytest

from agent_core.client import APIClient
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, wait_until


@pytest.mark.slow
def test_the_agent_rides_out_an_api_outage_and_deploys_the_runs_created_meanwhile(
    sqlite_server: APIServer, sqlite_api: APIClient, make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    flow = sqlite_api.register_flow("during-outage", "true")
    backend = Backend()
    agent = make_agent([backend], start=True, stall_threshold=0.5)
    wait_until(lambda: agent.health()["last_successful_poll"])
    assert agent.health()["status"] == "ok"

    sqlite_server.stop()

    def outage_warnings() -> list[str]:
        return [
            r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "last success" in r.getMessage()
        ]

    wait_until(lambda: len(outage_warnings()) >= 2, timeout=5)  # still polling, still warning
    assert all(" s ago" in w for w in outage_warnings())
    unhealthy = wait_until(lambda: (h := agent.health())["status"] == "unhealthy" and h, timeout=5)
    assert "unreachable" in unhealthy["problems"]["api"]

    # Runs created while the API is away (straight into its database)...
    tenant = sqlite_server.store.ensure_tenant()
    runs = [sqlite_server.store.create_run(tenant, {"flow_id": flow["id"]})[0]["id"] for _ in range(3)]
    sqlite_server.start()

    # ...are deployed once it is back, by the same agent, which is healthy again.
    wait_until(lambda: set(runs) <= set(backend.deployed_ids()), timeout=15)
    assert agent.health()["status"] == "ok"
    assert agent.name not in make_agent.errors
    assert [r["state"]["type"] for r in map(sqlite_api.get_flow_run, runs)] == ["Submitted"] * 3


def test_a_claim_lost_to_an_outage_is_resolved_by_reading_the_run_back(
    sqlite_server: APIServer, sqlite_api: APIClient, make_agent, clock: FakeClock
) -> None:
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True, prefetch_seconds=60)
    # Far enough ahead that the server (on real time) never finds it due and claims it in the
    # poll's answer, however slow the machine: the claim is the deploy thread's, after its wait.
    run = create_run(sqlite_api, scheduled_start_time=clock.now().add(seconds=30))
    deploy_waits = iter([sqlite_server.stop, sqlite_server.start])

    def on_wait(_: float) -> None:
        if threading.current_thread().name.startswith("deploy"):
            next(deploy_waits, lambda: None)()

    clock.on_wait = on_wait  # the API goes away during the wait for the start time, back after

    assert agent.poll_once() is True
    wait_until(lambda: agent.pool.pending == 0)

    # The claim never reached the API: the run is still Scheduled and not ours...
    assert backend.deployed == []
    assert sqlite_api.get_flow_run(run["id"])["state"]["type"] == "Scheduled"
    # ...so the next poll takes it.
    assert agent.poll_once() is True
    wait_until(lambda: backend.deployed)


def test_failed_polls_back_off_on_the_capped_schedule_warning_each_time(
    sqlite_server: APIServer, make_agent, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    agent = make_agent(clock=clock, prepare=True, max_polls=9)
    agent.poll_once()  # one success, at the clock's start
    sqlite_server.stop()
    try:
        agent.poll_loop()
    finally:
        sqlite_server.start()

    assert clock.waits_of("MainThread")[:8] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    warnings = [r.getMessage() for r in caplog.records if "last success" in r.getMessage()]
    assert len(warnings) == 9
    assert "last success 0 s ago" in warnings[0]
    assert "last success 36 s ago" in warnings[-1]  # 0.25 + 0.5 + 1 + 2 + 4 + 8 + 10 + 10 = 35.75 s later
