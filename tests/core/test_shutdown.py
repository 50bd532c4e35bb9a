"""Stopping: drain in-flight deployments (bounded), leave unclaimed runs for others, run
``on_shutdown`` last; SIGTERM on the main thread does the same; ``--until-idle``."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

import pytest

from agent_core import DeploymentStatus, hookimpl
from agent_core.client import APIClient
from agent_core.testing import harness
from tests.core.conftest import (
    Backend,
    MonitoredBackend,
    create_run,
    run_logs,
    run_state,
    wait_for_state,
    wait_until,
)


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


# --- one budget, and what the drain says ---------------------------------------------------


class Stuck(MonitoredBackend):
    """Everything that can hold a shutdown up, held until ``release``: a deploy, a cancel, and
    (once ``hold`` is set) every heartbeat hook and run-event hook."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.hold = threading.Event()
        self.deploying = threading.Event()
        self.cancelling = threading.Event()
        self.stuck_deploy = ""

    @hookimpl
    def deploy_flow(self, flow_run: Any, run_config: Any, agent: Any) -> Any:
        if flow_run.id == self.stuck_deploy:
            self.deploying.set()
            self.release.wait(120)
        return super().deploy_flow(flow_run=flow_run, run_config=run_config, agent=agent)

    @hookimpl
    def cancel_deployment(self, flow_run: Any, grace_seconds: float) -> bool:
        self.cancelling.set()
        self.release.wait(120)
        return True

    @hookimpl
    def heartbeat(self, agent: Any) -> None:
        if self.hold.is_set():
            self.release.wait(120)

    @hookimpl
    def flow_run_state_changed(self, flow_run: Any) -> None:
        if self.hold.is_set():
            self.release.wait(120)


def test_a_shutdown_held_up_everywhere_ends_within_the_drain_timeout_plus_the_margin(
    make_agent, sqlite_api: APIClient
) -> None:
    from agent_core.engine.agent import SHUTDOWN_MARGIN

    backend = Stuck()
    agent = make_agent([backend], drain_timeout=1.0)
    thread = make_agent.start(agent)
    try:
        cancelled = create_run(sqlite_api)
        wait_for_state(sqlite_api, cancelled["id"], "Running")
        sqlite_api.cancel_flow_run(cancelled["id"])
        assert backend.cancelling.wait(10)  # a cancel in progress, for good
        backend.hold.set()  # heartbeat and run-event hooks from now on never return
        backend.stuck_deploy = create_run(sqlite_api)["id"]
        agent.poke()
        assert backend.deploying.wait(10)  # a deploy in progress, for good

        stopped = time.monotonic()
        agent.stop()
        thread.join(60)
        took = time.monotonic() - stopped
    finally:
        backend.release.set()
        wait_until(lambda: agent.pool.pending == 0)  # the threads left behind end within the test

    assert not thread.is_alive()
    # Each stuck part alone may take 5-10 s; together they get the one budget (+ a loaded machine's slack).
    assert took < 1.0 + SHUTDOWN_MARGIN + 4, f"shutdown took {took:.1f}s"


def test_the_heartbeat_goes_on_while_draining_and_never_after_on_shutdown(make_agent, sqlite_api: APIClient) -> None:
    beats: list[float] = []
    shutdown_at: list[float] = []

    class Watch(Recorder):
        @hookimpl
        def heartbeat(self, agent: Any) -> None:
            beats.append(time.monotonic())

        @hookimpl
        def on_shutdown(self, agent: Any) -> None:
            shutdown_at.append(time.monotonic())

    backend = Watch(delay=1.5)
    create_run(sqlite_api)
    agent = make_agent([backend])
    thread = make_agent.start(agent)
    assert backend.entered.wait(10)

    stopped = time.monotonic()
    agent.stop()
    thread.join(20)

    assert [beat for beat in beats if beat > stopped], "no heartbeat while draining"
    assert shutdown_at and max(beats) < shutdown_at[0]


def test_the_drain_says_what_it_waits_for_with_a_countdown(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    backend = Recorder(delay=6.5)
    create_run(sqlite_api)
    agent = make_agent([backend], drain_timeout=30.0)
    thread = make_agent.start(agent)
    assert backend.entered.wait(10)

    agent.stop()
    thread.join(40)

    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("draining:")]
    assert len(lines) >= 2, lines  # at once, then every 5 s
    assert lines[0].startswith("draining: 1 run(s) still deploying, 0 monitored (left running), 30s left")
    assert "25s left" in lines[1] or "24s left" in lines[1], lines


def test_the_exit_names_the_workloads_left_running_unwatched(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    run = create_run(sqlite_api, flow="long-flow")
    agent = make_agent([MonitoredBackend()], name="keeper")
    thread = make_agent.start(agent)
    wait_for_state(sqlite_api, run["id"], "Running")

    agent.stop()
    thread.join(20)

    (line,) = [r.getMessage() for r in caplog.records if "keep running unwatched" in r.getMessage()]
    assert f"run {run['id']} (long-flow): workload wl-" in line
    assert "started again under the name 'keeper' re-attaches" in line
