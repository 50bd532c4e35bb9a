"""Agents under stress: API outages, signals, SIGKILL and restart, cancellation."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pendulum
import pytest

from agent_core.testing.servers import APIServer
from tests.e2e.conftest import (
    group_members,
    log_messages,
    run_dir,
    wait_for_state,
    wait_until,
)

# --- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def black_hole(port: int) -> Iterator[threading.Event]:
    """Listen on ``port`` and accept connections, but never answer: every request hangs.

    The event is set once a client has connected.
    """
    connected = threading.Event()
    held: list[socket.socket] = []
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.1)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                held.append(conn)
                connected.set()

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            yield connected
        finally:
            stop.set()
            thread.join(5)
            for conn in held:
                conn.close()


# --- the API going away ----------------------------------------------------------------------


@pytest.mark.slow
def test_an_agent_survives_a_15s_api_outage_and_then_runs_what_was_created_meanwhile(server, client, start_agent):
    flow = client.register_flow("made-during-outage", "echo ran after the outage")
    tenant = server.store.ensure_tenant("default")
    agent = start_agent(server)

    server.stop()
    # The store is still there: these runs are created while the agent cannot see the API.
    runs = [server.store.create_run(tenant, {"flow_id": flow["id"]})[0] for _ in range(3)]
    time.sleep(15)
    assert agent.alive(), agent.output()
    server.start()

    for run in runs:
        assert wait_for_state(client, run["id"], timeout=30, agent=agent)["state"]["type"] == "Success"
    assert agent.alive()
    warnings = [line for line in agent.output().splitlines() if "WARNING" in line and "last success" in line]
    assert warnings, agent.output()


def test_a_run_that_ends_while_the_api_is_down_is_marked_success_when_it_returns(
    server, client, create_run, start_agent
):
    run = create_run("sh -c 'sleep 1; echo finished'")
    agent = start_agent(server)
    wait_for_state(client, run["id"], "Running", agent=agent)

    server.stop()
    time.sleep(4)  # the workload ends meanwhile
    server.start()

    assert wait_for_state(client, run["id"], timeout=30, agent=agent)["state"]["type"] == "Success"
    wait_until(lambda: "finished" in log_messages(client, run["id"]), 10, message="the run's output in its logs")


# --- signals ---------------------------------------------------------------------------------


def test_sigterm_during_deploys_drains_them_and_exits_0_leaving_no_claimed_run_without_deployment(
    server, client, start_agent
):
    flow = client.register_flow("drained", "sleep 1")
    tenant = server.store.ensure_tenant("default")
    run_ids = [server.store.create_run(tenant, {"flow_id": flow["id"]})[0]["id"] for _ in range(40)]
    agent = start_agent(server, "--drain-timeout", "10", env={"AGENT__AGENT__MAX_WORKERS": "2"}, ready=False)
    agent.wait_for_output("Deploying flow run")

    agent.send(signal.SIGTERM)
    signalled = time.monotonic()
    code = agent.wait(20)
    took = time.monotonic() - signalled

    assert code == 0, agent.output()[-3000:]
    assert took <= 10 + 1, f"exited {took:.1f}s after SIGTERM (drain timeout 10 s)"
    runs = [client.get_flow_run(run_id) for run_id in run_ids]
    orphans = [r["id"] for r in runs if r["state"]["type"] == "Submitted" and not r["deployment"]]
    assert orphans == []
    deployed = [r for r in runs if r["deployment"]]
    assert deployed, "the SIGTERM should have come while runs were being deployed"
    assert all(r["state"]["type"] == "Scheduled" or r["deployment"] for r in runs)
    assert len(deployed) < len(runs), "no new claims after SIGTERM: some runs should be left Scheduled"


def test_a_second_signal_while_the_agent_is_still_draining_exits_at_once(server, start_agent):
    agent = start_agent(server)
    server.stop()
    with black_hole(server.port) as connected:
        # The agent's next request connects and never gets an answer (client timeout: 10 s).
        assert connected.wait(15), "the agent should have tried the API"
        time.sleep(0.2)

        agent.send(signal.SIGTERM)
        time.sleep(1)
        assert agent.alive(), "the first SIGTERM waits for the request in progress"
        agent.send(signal.SIGINT)
        second = time.monotonic()
        agent.wait(5)

    assert time.monotonic() - second < 1.0
    assert agent.proc.returncode != 0


def test_sigint_stops_an_idle_agent_with_exit_0(server, start_agent):
    agent = start_agent(server)

    agent.send(signal.SIGINT)

    assert agent.wait(15) == 0
    assert "Traceback" not in agent.errors()


# --- restart ---------------------------------------------------------------------------------


def test_an_agent_killed_while_its_run_is_running_reattaches_after_a_restart_and_the_run_runs_once(
    server, client, create_run, start_agent, tmp_path: Path
):
    ledger = tmp_path / "ran"
    run = create_run(f"sh -c 'sleep 3; echo done >> {ledger}'")
    first = start_agent(server, name="phoenix")
    wait_for_state(client, run["id"], "Running", agent=first)

    first.send(signal.SIGKILL)
    first.wait(5)
    second = start_agent(server, name="phoenix")

    assert wait_for_state(client, run["id"], timeout=20, agent=second)["state"]["type"] == "Success"
    assert ledger.read_text().split() == ["done"]
    assert second.alive()
    wait_until(
        lambda: any("re-attached" in line for line in log_messages(client, run["id"])),
        5,
        message="a re-attach note in the run's logs",
    )


# --- cancellation ----------------------------------------------------------------------------


@pytest.fixture
def fast_cancel() -> dict[str, str]:
    return {"AGENT__AGENT__CANCEL_GRACE_SECONDS": "2"}


def test_agent_runs_cancel_stops_a_running_run_and_its_process_group_within_the_grace_period(
    server: APIServer, client, create_run, start_agent, run_cli, fast_cancel, agent_home
):
    run = create_run("sh -c 'sleep 300 & sleep 300; wait'")
    agent = start_agent(server, env=fast_cancel)
    wait_for_state(client, run["id"], "Running", agent=agent)
    pgid = int((run_dir(agent_home, run["id"]) / "pid").read_text())
    # The supervisor, sh and two sleeps.
    wait_until(lambda: len(group_members(pgid)) >= 4, 5, message="the whole workload to be running")

    cancelled = run_cli("--api", server.url, "runs", "cancel", run["id"])
    asked = time.monotonic()
    assert cancelled.returncode == 0, cancelled.stderr

    final = wait_for_state(client, run["id"], timeout=10, agent=agent)
    assert final["state"]["type"] == "Cancelled"
    assert time.monotonic() - asked <= 2 + 1.5
    assert group_members(pgid) == []


def test_a_workload_that_ignores_sigterm_is_killed_after_the_grace_period(
    server, client, create_run, start_agent, fast_cancel, agent_home
):
    run = create_run("sh -c 'trap \"\" TERM; sleep 300'")
    agent = start_agent(server, env=fast_cancel)
    wait_for_state(client, run["id"], "Running", agent=agent)
    pgid = int((run_dir(agent_home, run["id"]) / "pid").read_text())

    client.cancel_flow_run(run["id"])
    asked = time.monotonic()
    final = wait_for_state(client, run["id"], timeout=10, agent=agent)
    took = time.monotonic() - asked

    assert final["state"]["type"] == "Cancelled"
    assert 2 <= took <= 2 + 2, f"cancelled after {took:.2f}s with a 2 s grace period"
    assert group_members(pgid) == []


def test_cancelling_a_run_that_has_not_started_yet_cancels_it_without_running_it(
    server, client, create_run, start_agent, tmp_path: Path
):
    ledger = tmp_path / "ran"
    start = pendulum.now("UTC").add(seconds=3)
    run = create_run(f"sh -c 'echo ran >> {ledger}'", scheduled_start_time=start)
    agent = start_agent(server)  # its first poll prefetches the run: a deploy thread waits for its time

    client.cancel_flow_run(run["id"])

    assert wait_for_state(client, run["id"], timeout=10, agent=agent)["state"]["type"] == "Cancelled"
    time.sleep(max(0.0, start.timestamp() - time.time()) + 1.5)  # past its scheduled time
    assert client.get_flow_run(run["id"])["state"]["type"] == "Cancelled"
    assert not ledger.exists()
