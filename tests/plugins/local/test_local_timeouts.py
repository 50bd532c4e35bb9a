"""Timeouts with the local backend: a real ``agent start --backend local`` process stops a
workload that runs past its run config's ``timeout_seconds``, and its processes are gone."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import group_alive, group_members, run_dir, state_history, wait_for_state, wait_until


def supervisor_pid(home: Path, run_id: str) -> int:
    """The run's supervisor pid, which is also its process group (see plugins/local/process.py)."""
    pid_file = run_dir(home, run_id) / "pid"
    return wait_until(lambda: pid_file.is_file() and int(pid_file.read_text() or 0), 30, message="the run's pid file")


def test_a_local_run_past_its_timeout_is_stopped_and_failed_and_its_process_is_gone(
    server, client, create_run, start_agent
):
    run = create_run("sleep 600", run_config={"type": "local", "timeout_seconds": 2})
    agent = start_agent(server)
    pgid = supervisor_pid(agent.home, run["id"])
    wait_for_state(client, run["id"], "Running", agent=agent)

    failed = wait_for_state(client, run["id"], "Failed", timeout=60, agent=agent)

    assert "timed out after 2s" in failed["state"]["message"]
    assert state_history(client, run["id"])[-2:] == ["Running", "Failed"]
    wait_until(lambda: not group_members(pgid), 15, message=f"process group {pgid} to end")
    wait_until(lambda: not group_alive(pgid), 15, message=f"process group {pgid} to be reaped")
    assert agent.alive()
