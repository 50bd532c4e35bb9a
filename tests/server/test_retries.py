"""Retries: a run that fails with retries left is Scheduled again at now + delay, attempt + 1."""

import pendulum
import pytest


def failed_run(api, flow, *, max_retries, delay=0.0, via="Running"):
    """A run that has just been marked Failed from ``via``; returns (run as answered, time bounds)."""
    run = api.create_flow_run(flow_id=flow["id"], max_retries=max_retries, retry_delay_seconds=delay)
    api.set_flow_run_state(run["id"], version=1, state=via)
    before = pendulum.now("UTC")
    answered = api.set_flow_run_state(run["id"], version=2, state="Failed", message="exit code 1")
    after = pendulum.now("UTC")
    return answered, before, after


def test_a_failed_run_with_retries_left_is_scheduled_again(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=2)

    assert run["state"]["type"] == "Scheduled"
    assert run["attempt"] == 2


def test_the_retry_is_scheduled_at_now_plus_the_delay(api, make_flow):
    run, before, after = failed_run(api, make_flow(), max_retries=1, delay=90)

    start = pendulum.parse(run["scheduled_start_time"])

    assert before.add(seconds=90) <= start <= after.add(seconds=90)


def test_the_retry_is_not_in_the_queue_before_its_delay(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=1, delay=3600)

    assert api.get_queue([], pendulum.now("UTC")) == []
    assert [r["id"] for r in api.get_queue([], pendulum.now("UTC").add(hours=2))] == [run["id"]]


def test_a_retry_without_delay_is_ready_at_once(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=1)

    (queued,) = api.get_queue([], pendulum.now("UTC"))

    assert (queued["id"], queued["attempt"], queued["version"]) == (run["id"], 2, run["version"])


def test_the_history_shows_the_failure_then_the_retry(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=2)

    history = api.flow_run_states(run["id"])

    assert [(h["type"], h["attempt"]) for h in history] == [
        ("Scheduled", 1),
        ("Running", 1),
        ("Failed", 1),
        ("Scheduled", 2),
    ]
    assert history[2]["message"] == "exit code 1"
    assert "Retry 1 of 2" in history[3]["message"]


def test_a_retried_run_forgets_its_agent_deployment_and_times(api_server, api, make_flow):
    agent = api.register_agent(name="a1", backend="local", labels=[])
    runner = api_server.client()
    runner.set_agent_id(agent["id"])
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=1)
    runner.set_flow_run_state(run["id"], version=1, state="Submitted")
    runner.set_deployment(run["id"], {"backend": "local", "platform_id": "42"})
    runner.set_flow_run_state(run["id"], version=2, state="Running")

    retried = runner.set_flow_run_state(run["id"], version=3, state="Failed")

    assert retried["agent_id"] is None
    assert retried["deployment"] is None
    assert (retried["start_time"], retried["end_time"]) == (None, None)


def test_the_retry_has_a_new_version_so_the_old_one_is_stale(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=1)

    assert run["version"] == 4  # Scheduled 1, Running 2, Failed 3, Scheduled 4
    claimed = api.set_flow_run_state(run["id"], version=run["version"], state="Submitted")
    assert claimed["attempt"] == 2


def test_a_run_without_retries_stays_failed(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=0)

    assert run["state"]["type"] == "Failed"
    assert run["attempt"] == 1
    assert run["end_time"] is not None


def test_a_run_that_used_all_its_retries_stays_failed(api, make_flow):
    run, _, _ = failed_run(api, make_flow(), max_retries=1)
    api.set_flow_run_state(run["id"], version=run["version"], state="Running")

    final = api.set_flow_run_state(run["id"], version=run["version"] + 1, state="Failed", message="again")

    assert final["state"]["type"] == "Failed"
    assert final["attempt"] == 2
    assert api.get_queue([], pendulum.now("UTC")) == []


def test_every_retry_raises_the_attempt_until_the_last(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=3)
    attempts = []
    for _ in range(4):
        running = api.set_flow_run_state(run["id"], version=run["version"], state="Running")
        run = api.set_flow_run_state(run["id"], version=running["version"], state="Failed")
        attempts.append((run["state"]["type"], run["attempt"]))

    assert attempts == [("Scheduled", 2), ("Scheduled", 3), ("Scheduled", 4), ("Failed", 4)]


@pytest.mark.parametrize("via", ["Scheduled", "Submitted", "Running"])
def test_a_failure_from_any_active_state_is_retried(api, make_flow, via):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=1)
    if via != "Scheduled":
        run = api.set_flow_run_state(run["id"], version=1, state=via)

    retried = api.set_flow_run_state(run["id"], version=run["version"], state="Failed")

    assert (retried["state"]["type"], retried["attempt"]) == ("Scheduled", 2)


def test_a_run_that_fails_while_cancelling_is_not_retried(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=2)
    api.set_flow_run_state(run["id"], version=1, state="Running")
    cancelling = api.cancel_flow_run(run["id"])

    after = api.set_flow_run_state(run["id"], version=cancelling["version"], state="Failed", message="killed")

    assert after["state"]["type"] == "Failed"


def test_success_is_never_retried(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=2)
    api.set_flow_run_state(run["id"], version=1, state="Running")

    done = api.set_flow_run_state(run["id"], version=2, state="Success")

    assert (done["state"]["type"], done["attempt"]) == ("Success", 1)
