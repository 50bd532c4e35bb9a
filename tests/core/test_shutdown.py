"""Stopping: drain in-flight deployments (bounded), leave unclaimed runs for others, run
``on_shutdown`` last; SIGTERM on the main thread does the same; ``--until-idle``."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from agent_core import DeploymentStatus, hookimpl
from agent_core.client import APIClient
from agent_core.testing import harness
from tests.core.conftest import Backend, MonitoredBackend, create_run, run_logs, run_state, wait_until


class Recorder(Backend):
    """Deploys slowly (``delay`` s) and records deploys and shutdown in ``events``."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.events: list[str] = []
        self.entered = threading.Event()

    @hookimpl
    def deploy_flow(self, flow_run: Any, run_config: Any, agent: Any) -> str:
        self.entered.set()
        time.sleep(self.delay)
        self.events.append("deployed")
        return "slow workload"

    @hookimpl
    def on_shutdown(self, agent: Any) -> None:
        self.events.append("on_shutdown")


def test_stop_drains_in_flight_deployments_before_on_shutdown(make_agent, sqlite_api: APIClient) -> None:
    backend = Recorder(delay=0.5)
    run = create_run(sqlite_api)
    agent = make_agent([backend])
    thread = make_agent.start(agent)
    assert backend.entered.wait(5)

    agent.stop()
    thread.join(10)

    assert backend.events == ["deployed", "on_shutdown"]
    assert run_state(sqlite_api, run["id"]) == "Submitted"
    assert [e["message"] for e in run_logs(sqlite_api, run["id"])] == ["Submitted for execution: slow workload"]


def test_a_deployment_past_the_drain_timeout_does_not_hold_up_shutdown(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Recorder(delay=1.5)
    create_run(sqlite_api)
    agent = make_agent([backend], drain_timeout=0.3)
    thread = make_agent.start(agent)
    assert backend.entered.wait(5)

    stopped = time.monotonic()
    agent.stop()
    thread.join(10)

    assert time.monotonic() - stopped < 2
    assert backend.events == ["on_shutdown"]
    assert any("drain timeout" in r.getMessage() for r in caplog.records)


def test_stopping_while_waiting_for_a_start_time_leaves_the_run_scheduled(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    agent = make_agent([backend])
    start = agent.clock.now().add(seconds=5)
    run = create_run(sqlite_api, scheduled_start_time=start)
    thread = make_agent.start(agent)
    wait_until(lambda: agent.is_in_flight(run["id"]))

    stopped = time.monotonic()
    agent.stop()
    thread.join(10)

    assert time.monotonic() - stopped < 2  # did not sit out the 5 s
    assert backend.deployed == []
    assert run_state(sqlite_api, run["id"]) == "Scheduled"


def test_sigterm_on_the_main_thread_stops_the_agent_gracefully(make_agent, sqlite_api: APIClient) -> None:
    fallback: list[int] = []
    backend = Recorder()
    agent = make_agent([backend], max_polls=200)

    def previous(signum: int, _: Any) -> None:  # only runs if the agent installed no handler
        fallback.append(signum)
        agent.stop()

    old = signal.signal(signal.SIGTERM, previous)
    try:
        run = create_run(sqlite_api)

        def term_once_deployed() -> None:
            # After the deploy however loaded the machine is (a fixed delay may come first).
            harness.wait_until(lambda: "deployed" in backend.events, 30)
            os.kill(os.getpid(), signal.SIGTERM)

        timer = threading.Thread(target=term_once_deployed, name="terminator", daemon=True)
        timer.start()
        agent.start()  # on this (the main) thread, so its signal handlers are installed
        timer.join()
        assert signal.getsignal(signal.SIGTERM) is previous  # restored on the way out
    finally:
        signal.signal(signal.SIGTERM, old)

    assert fallback == []
    assert agent.polls < 200
    assert backend.events == ["deployed", "on_shutdown"]
    assert run_state(sqlite_api, run["id"]) == "Submitted"


def test_until_idle_stops_once_every_run_is_done(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    run = create_run(sqlite_api)
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)
    agent = make_agent([backend], until_idle=True)

    make_agent.start(agent).join(10)

    assert agent.polls > 0
    assert run_state(sqlite_api, run["id"]) == "Success"
    assert agent.name not in make_agent.errors


def test_until_idle_keeps_polling_while_a_run_is_scheduled_for_later(make_agent, sqlite_api: APIClient) -> None:
    agent = make_agent(until_idle=True)
    create_run(sqlite_api, scheduled_start_time=agent.clock.now().add(hours=1))
    thread = make_agent.start(agent)

    wait_until(lambda: agent.polls >= 3, timeout=5)

    assert thread.is_alive()
