"""Run events: every state the engine sets or learns reaches subscribers and the
``flow_run_state_changed`` hook of every plugin, in order, without ever holding up a run."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from agent_core import Deployment, DeploymentStatus, FlowRun, hookimpl
from agent_core.client import APIClient
from agent_core.engine.events import RunEvent, RunEvents
from agent_core.errors import DeploymentError
from agent_core.states import State
from tests.core.conftest import Backend, MonitoredBackend, create_run, wait_for_state, wait_until


class Recorder:
    """An extension recording every ``flow_run_state_changed`` call."""

    def __init__(self, name: str = "recorder") -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @hookimpl
    def flow_run_state_changed(
        self,
        flow_run: FlowRun,
        old_state: State | None,
        new_state: State,
        message: str,
        deployment: Deployment | None,
        agent: Any,
    ) -> None:
        with self.lock:
            self.calls.append(
                {
                    "run": flow_run.id,
                    "old": old_state,
                    "new": new_state,
                    "message": message,
                    "deployment": deployment,
                    "run_state": flow_run.state,
                    "thread": threading.current_thread().name,
                    "agent": agent.name,
                }
            )

    def of(self, run_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [call for call in self.calls if call["run"] == run_id]

    def transitions(self, run_id: str) -> list[tuple[State | None, State]]:
        return [(call["old"], call["new"]) for call in self.of(run_id)]


def test_a_successful_run_reports_claim_running_and_success_in_order(make_agent, sqlite_api: APIClient) -> None:
    backend, recorder = MonitoredBackend(), Recorder()
    make_agent([backend, recorder], start=True)
    run = create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    wait_until(lambda: len(recorder.of(run["id"])) == 3)

    assert recorder.transitions(run["id"]) == [
        (State.SCHEDULED, State.SUBMITTED),
        (State.SUBMITTED, State.RUNNING),
        (State.RUNNING, State.SUCCESS),
    ]


def test_a_run_event_carries_the_message_and_the_run_in_its_new_state(make_agent, sqlite_api: APIClient) -> None:
    backend, recorder = MonitoredBackend(), Recorder()
    make_agent([backend, recorder], start=True)
    run = create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    wait_until(lambda: len(recorder.of(run["id"])) == 3)

    claim, _, success = recorder.of(run["id"])
    assert claim["message"].startswith("Submitted by agent")
    assert success["message"] == "Exited with code 0"
    assert [call["run_state"] for call in recorder.of(run["id"])] == [State.SUBMITTED, State.RUNNING, State.SUCCESS]


def test_run_events_after_the_deploy_carry_the_deployment(make_agent, sqlite_api: APIClient) -> None:
    backend, recorder = MonitoredBackend(), Recorder()
    make_agent([backend, recorder], start=True)
    run = create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    wait_until(lambda: len(recorder.of(run["id"])) == 3)

    deployments = [call["deployment"] for call in recorder.of(run["id"])]
    assert deployments[0] is None  # claimed, not yet deployed
    assert all(d is not None and d.platform_id.startswith("wl-") for d in deployments[1:])


def test_a_failed_deploy_reports_submitted_to_failed_with_the_error(make_agent, sqlite_api: APIClient) -> None:
    def fail(**_: Any) -> None:
        raise DeploymentError("the image does not exist")

    recorder = Recorder()
    make_agent([Backend(behaviour=fail), recorder], start=True)
    run = create_run(sqlite_api)

    wait_until(lambda: len(recorder.of(run["id"])) == 2)

    failed = recorder.of(run["id"])[1]
    assert (failed["old"], failed["new"]) == (State.SUBMITTED, State.FAILED)
    assert "the image does not exist" in failed["message"]


def test_a_cancelled_run_reports_the_cancelled_state(make_agent, sqlite_api: APIClient) -> None:
    backend, recorder = MonitoredBackend(), Recorder()
    make_agent([backend, recorder], start=True)
    run = create_run(sqlite_api)
    wait_for_state(sqlite_api, run["id"], "Running")
    sqlite_api.cancel_flow_run(run["id"])

    wait_for_state(sqlite_api, run["id"], "Cancelled")
    wait_until(lambda: any(call["new"] == State.CANCELLED for call in recorder.of(run["id"])))

    assert recorder.transitions(run["id"])[-1] == (State.CANCELLING, State.CANCELLED)


def test_a_restarted_agent_reports_each_run_it_re_attaches_to(make_agent, sqlite_api: APIClient) -> None:
    backend = MonitoredBackend()
    first = make_agent([backend], name="restarts")
    thread = make_agent.start(first)
    run = create_run(sqlite_api)
    wait_for_state(sqlite_api, run["id"], "Running")
    first.stop()
    thread.join(20)

    recorder = Recorder()
    make_agent([MonitoredBackend(), recorder], start=True, name="restarts")

    (event,) = wait_until(lambda: recorder.of(run["id"]))
    assert (event["old"], event["new"], event["message"]) == (State.RUNNING, State.RUNNING, "re-attached")
    assert event["deployment"] is not None


def test_the_hook_is_called_on_the_run_events_thread(make_agent, sqlite_api: APIClient) -> None:
    recorder = Recorder()
    make_agent([Backend(), recorder], start=True)
    run = create_run(sqlite_api)

    (call,) = wait_until(lambda: recorder.of(run["id"]))

    assert call["thread"] == "run-events"


def test_the_hook_is_called_on_the_backend_and_on_every_extension(make_agent, sqlite_api: APIClient) -> None:
    class RecordingBackend(Backend, Recorder):
        def __init__(self) -> None:
            Recorder.__init__(self)
            Backend.__init__(self)  # last: the backend's name "x"

    backend, one, two = RecordingBackend(), Recorder("one"), Recorder("two")
    make_agent([backend, one, two], start=True)
    run = create_run(sqlite_api)

    wait_until(lambda: backend.of(run["id"]) and one.of(run["id"]) and two.of(run["id"]))


def test_a_raising_hookimpl_is_logged_with_its_plugin_and_the_others_still_hear(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    class Raising:
        name = "notifier"

        @hookimpl
        def flow_run_state_changed(self, flow_run: FlowRun) -> None:
            raise RuntimeError("the webhook is down")

    recorder = Recorder()
    make_agent([Backend(), recorder, Raising()], start=True)
    run = create_run(sqlite_api)

    wait_until(lambda: recorder.of(run["id"]))
    wait_until(lambda: any("'notifier'" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR))


def test_a_slow_hookimpl_does_not_hold_up_the_run(make_agent, sqlite_api: APIClient) -> None:
    release = threading.Event()

    class Slow:
        @hookimpl
        def flow_run_state_changed(self, flow_run: FlowRun) -> None:
            release.wait(30)

    backend = MonitoredBackend()
    agent = make_agent([backend, Slow()], start=True)
    run = create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())
    backend.statuses[run["id"]] = DeploymentStatus.exited(0)

    try:
        wait_for_state(sqlite_api, run["id"], "Success")  # while the first event is still being heard
        assert agent.events.pending >= 1
    finally:
        release.set()


def test_a_subscriber_hears_each_event_before_the_hook(make_agent, sqlite_api: APIClient) -> None:
    order: list[str] = []

    class Hook:
        @hookimpl
        def flow_run_state_changed(self, new_state: State) -> None:
            order.append(f"hook {new_state.value}")

    agent = make_agent([Backend(), Hook()], start=False)
    agent.events.subscribe(lambda event: order.append(f"subscriber {event.new_state.value}"))
    make_agent.start(agent)
    create_run(sqlite_api)

    wait_until(lambda: len(order) == 2)
    assert order == ["subscriber Submitted", "hook Submitted"]


def test_events_queued_at_shutdown_are_heard_before_on_shutdown(make_agent, sqlite_api: APIClient) -> None:
    heard: list[str] = []

    class Late:
        @hookimpl
        def flow_run_state_changed(self, new_state: State) -> None:
            time.sleep(0.3)  # slower than the shutdown that follows the claim
            heard.append(new_state.value)

        @hookimpl
        def on_shutdown(self) -> None:
            heard.append("on_shutdown")

    backend = Backend()
    agent = make_agent([backend, Late()], start=True)
    create_run(sqlite_api)
    wait_until(lambda: backend.deployed_ids())
    agent.stop()

    wait_until(lambda: "on_shutdown" in heard)
    assert heard == ["Submitted", "on_shutdown"]


# --- the part on its own -----------------------------------------------------------------------


def a_run(client: APIClient) -> FlowRun:
    return FlowRun.from_api(create_run(client))


def test_emit_never_blocks_and_the_event_holds_a_copy_of_the_run(sqlite_api: APIClient) -> None:
    seen: list[RunEvent] = []
    events = RunEvents()
    events.subscribe(seen.append)
    run = a_run(sqlite_api)

    events.emit(run, State.SCHEDULED, State.SUBMITTED, "claimed")  # before start: queued
    run.version += 5
    events.start()
    events.stop(time.monotonic() + 5)

    (event,) = seen
    assert event.flow_run.version == run.version - 5
    assert (event.old_state, event.new_state, event.message) == (State.SCHEDULED, State.SUBMITTED, "claimed")


def test_a_slow_listener_is_logged_as_slow(sqlite_api: APIClient, caplog: pytest.LogCaptureFixture) -> None:
    events = RunEvents(slow_after=0.05)
    events.subscribe(lambda event: time.sleep(0.2))
    events.start()

    events.emit(a_run(sqlite_api), None, State.SUBMITTED)
    events.stop(time.monotonic() + 5)

    assert any("took" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_stop_gives_up_at_its_deadline_on_a_stuck_listener(sqlite_api: APIClient) -> None:
    release = threading.Event()
    events = RunEvents()
    events.subscribe(lambda event: release.wait(30))
    events.start()
    events.emit(a_run(sqlite_api), None, State.SUBMITTED)

    started = time.monotonic()
    try:
        assert events.stop(time.monotonic() + 0.3) is False
        assert time.monotonic() - started < 5
    finally:
        release.set()


def test_a_failed_attempt_with_a_retry_left_is_told_as_failed_not_as_the_apis_scheduled(make_agent, sqlite_api) -> None:
    seen: list[tuple[str | None, str, int]] = []
    backend = MonitoredBackend()
    agent = make_agent([backend], start=True)
    agent.events.subscribe(
        lambda e: seen.append((e.old_state and e.old_state.value, e.new_state.value, e.flow_run.attempt))
    )
    run = create_run(sqlite_api, max_retries=1)
    wait_for_state(sqlite_api, run["id"], "Running")
    backend.statuses[run["id"]] = DeploymentStatus.exited(3)

    wait_until(lambda: ("Running", "Failed", 1) in seen)

    assert ("Running", "Scheduled", 1) not in seen
