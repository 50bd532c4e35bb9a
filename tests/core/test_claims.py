"""Claims: Scheduled -> Submitted with the version read; losing a claim is silent.

These run on SQLite and PostgreSQL (``api_server``), where the compare-and-set differs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest

from agent_core.client import APIClient
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, FakeClock, create_run, run_logs, run_state, wait_until


def agent_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """What the agents and the engine logged at ``level`` or above (not the API server's own logs)."""
    return [
        r.getMessage() for r in caplog.records if r.levelno >= level and r.name.startswith(("agent.", "agent_core."))
    ]


def hold_deploy_threads(clock: FakeClock, release: threading.Event) -> None:
    """Deploy threads waiting for a start time on ``clock`` stay there until ``release``."""
    clock.on_wait = lambda _: release.wait(10) if threading.current_thread().name.startswith("deploy") else None


def test_two_agents_racing_for_the_same_runs_deploy_each_exactly_once_silently(
    api_server: APIServer, api: APIClient, make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    release = threading.Event()
    clocks = [FakeClock(), FakeClock()]
    for clock in clocks:
        hold_deploy_threads(clock, release)
    backends = [Backend(), Backend()]
    agents = [
        make_agent([backend], server=api_server, clock=clock, prepare=True, name=name, max_workers=8)
        for backend, clock, name in zip(backends, clocks, ["alpha", "beta"], strict=True)
    ]
    start = clocks[0].now().add(seconds=3)
    runs = [create_run(api, scheduled_start_time=start)["id"] for _ in range(8)]

    # Both agents fetch all eight runs, and every deploy thread waits for the start time...
    assert [agent.poll_once() for agent in agents] == [True, True]
    wait_until(lambda: all(len(clock.waits_of("deploy")) == 8 for clock in clocks))
    # ...then all sixteen claims go out at once.
    release.set()
    wait_until(lambda: all(agent.pool.pending == 0 for agent in agents))
    for agent in agents:
        assert agent.run_logs.flush(time.monotonic() + 10)

    deployed = Counter(run_id for backend in backends for run_id in backend.deployed_ids())
    assert deployed == Counter({run_id: 1 for run_id in runs})
    winners = {run_id: names[0] for backend in backends for run_id, names in backend.deployed_by.items()}
    ids = {agent.name: agent.id for agent in agents}
    for run_id in runs:
        run = api.get_flow_run(run_id)
        assert run["state"]["type"] == "Submitted"
        assert run["agent_id"] == ids[winners[run_id]]
        # The loser wrote nothing to the run: its only log is the winner's.
        logs = run_logs(api, run_id)
        assert [(e["name"], e["level"]) for e in logs] == [(winners[run_id], "INFO")]
        assert logs[0]["message"].startswith("Submitted for execution")
    assert agent_records(caplog, logging.WARNING) == []


@pytest.mark.parametrize("change", ["cancelled", "claimed by another agent"])
def test_a_run_changed_between_queue_read_and_claim_is_not_deployed(
    api_server: APIServer, api: APIClient, make_agent, clock: FakeClock, caplog: pytest.LogCaptureFixture, change: str
) -> None:
    caplog.set_level(logging.INFO)
    backend = Backend()
    agent = make_agent([backend], server=api_server, clock=clock, prepare=True)
    run = create_run(api, scheduled_start_time=clock.now().add(seconds=2))

    def meanwhile(_: float) -> None:
        if not threading.current_thread().name.startswith("deploy"):
            return
        if change == "cancelled":
            api.cancel_flow_run(run["id"])
        else:
            other = api_server.client()
            other.set_agent_id(other.register_agent(name="other", backend="x", labels=[])["id"])
            other.set_flow_run_state(run["id"], version=run["version"], state="Submitted")

    clock.on_wait = meanwhile

    assert agent.poll_once() is True
    wait_until(lambda: clock.waits_of("deploy") and agent.pool.pending == 0)
    assert agent.run_logs.flush(time.monotonic() + 10)

    assert backend.deployed == []
    assert run_state(api, run["id"]) == ("Cancelled" if change == "cancelled" else "Submitted")
    assert all(e["name"] != agent.name for e in run_logs(api, run["id"]))
    assert agent_records(caplog, logging.ERROR) == []
