"""What a stopping ``agent start`` process says: the workloads it leaves running unwatched."""

from __future__ import annotations

import signal

from tests.e2e.conftest import group_alive, wait_for_state, workload_pids


def test_sigterm_names_the_local_processes_left_running_and_how_to_re_attach(
    server, client, create_run, start_agent
) -> None:
    run = create_run("sleep 60")
    agent = start_agent(server, name="leaver")
    running = wait_for_state(client, run["id"], "Running", agent=agent)
    pid = running["deployment"]["platform_id"]

    agent.send(signal.SIGTERM)
    code = agent.wait(30)

    output = agent.output()
    assert code == 0, output[-3000:]
    assert "1 workload(s) keep running unwatched" in output
    assert f"run {run['id']}" in output and f"local process {pid} (sleep 60)" in output
    assert "started again under the name 'leaver' re-attaches to them" in output
    assert any(group_alive(pgid) for pgid in workload_pids(agent.home))  # it does keep running
