"""Focused behaviours of the local backend: its settings, output shipping, run directories.

Most tests drive a real ``agent start --backend local`` process against a real API server
(fixtures from ``tests/e2e/conftest.py``); the ones about a single hook call the backend's
hooks through a real :class:`Agent` and plugin manager, with no agent loop around them.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core.client import APIClient
from agent_core.engine.agent import Agent
from agent_core.engine.settings import AgentSettings
from agent_core.models import FlowRun
from agent_core.plugins import get_plugin_manager
from agent_core.runconfig import resolve_run_config
from agent_core.testing.servers import APIServer
from agent_plugin_local.state import state_of
from tests.e2e.conftest import group_members, log_messages, python_command, run_dir, wait_for_state, wait_until


def _wait_for_logs(api: APIClient, run_id: str, predicate, what: str) -> list[str]:
    return wait_until(
        lambda: (lambda messages: messages if predicate(messages) else None)(log_messages(api, run_id)),
        10,
        message=what,
    )


# --- settings ---------------------------------------------------------------------------------


def test_the_working_directory_then_the_import_paths_come_first_on_the_workloads_pythonpath(
    server, client, create_run, start_agent, tmp_path: Path
):
    first, second, work = tmp_path / "first", tmp_path / "second", tmp_path / "work"
    for directory, value in ((first, "from-first"), (second, "from-second"), (work, "from-work")):
        directory.mkdir()
        (directory / "e2e_import_probe.py").write_text(f"VALUE = {value!r}\n")
    probe = python_command(
        "import os, e2e_import_probe; print(e2e_import_probe.VALUE); print(os.environ['PYTHONPATH'])"
    )
    in_agent_dir = create_run(probe)
    in_work_dir = create_run(probe, run_config={"type": "local", "working_dir": str(work)})
    agent = start_agent(
        server, "--import-path", str(first), "--import-path", str(second), env={"PYTHONPATH": "/already/there"}
    )

    # The agent process runs in tmp_path (see start_agent): its working directory comes first.
    for run, directory, value in ((in_agent_dir, tmp_path, "from-first"), (in_work_dir, work, "from-work")):
        assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
        messages = _wait_for_logs(client, run["id"], lambda m, v=value: v in m, "the probe's output")
        assert os.pathsep.join([str(directory), str(first), str(second), "/already/there"]) in messages


def test_show_flow_logs_echoes_each_output_line_to_the_agents_own_log(server, client, create_run, start_agent):
    run = create_run("sh -c 'echo first-shown-line; echo second-shown-line'")
    quiet_run = create_run("echo not-shown-without-the-flag")
    shown = start_agent(server, "--show-flow-logs", env={"AGENT__AGENT__MAX_WORKERS": "1"})
    assert wait_for_state(client, run["id"], agent=shown)["state"]["type"] == "Success"
    assert wait_for_state(client, quiet_run["id"], agent=shown)["state"]["type"] == "Success"

    shown.wait_for_output("second-shown-line", timeout=5)
    lines = shown.output().splitlines()
    first = next(i for i, line in enumerate(lines) if "first-shown-line" in line)
    assert "second-shown-line" in lines[first + 1] or any("second-shown-line" in x for x in lines[first + 1 :])


def test_without_show_flow_logs_the_output_goes_only_to_the_run_logs(server, client, create_run, start_agent):
    run = create_run("echo kept-out-of-the-agent-log")
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    _wait_for_logs(client, run["id"], lambda m: "kept-out-of-the-agent-log" in m, "the output in the run logs")
    assert "kept-out-of-the-agent-log" not in agent.output()


# --- output -----------------------------------------------------------------------------------


def test_a_burst_of_output_arrives_complete_and_in_order_in_far_fewer_requests_than_lines(
    server, client, create_run, start_agent
):
    count = 2000
    run = create_run(python_command(f"for i in range(1, {count + 1}): print('burst-line', i)"))
    before = server.requests_answered("POST", "/api/logs")
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    messages = _wait_for_logs(
        client, run["id"], lambda m: f"burst-line {count}" in m, "the burst's last line in the run logs"
    )
    burst = [line for line in messages if line.startswith("burst-line ")]
    assert burst == [f"burst-line {i}" for i in range(1, count + 1)]
    # Batched: a request per line would be 2,000; batches of up to 1,000 lines every 0.2 s
    # make a handful (the agent's own lines included). The bound holds on a loaded machine.
    assert server.requests_answered("POST", "/api/logs") - before <= count // 20


def test_stderr_is_shipped_to_the_run_logs_like_stdout(server, client, create_run, start_agent):
    run = create_run("sh -c 'echo on-stdout; echo on-stderr >&2'")
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    _wait_for_logs(client, run["id"], lambda m: {"on-stdout", "on-stderr"} <= set(m), "both streams in the logs")


def test_output_without_a_trailing_newline_is_still_shipped(server, client, create_run, start_agent):
    run = create_run("printf no-newline-at-the-end")
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    _wait_for_logs(client, run["id"], lambda m: "no-newline-at-the-end" in m, "the unfinished last line")


def test_a_line_written_in_two_parts_is_shipped_as_one_line(server, client, create_run, start_agent):
    run = create_run("sh -c 'printf half-a; sleep 1; echo half-b'")
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    messages = _wait_for_logs(client, run["id"], lambda m: {"half-ahalf-b", "half-b"} & set(m), "the second half")
    assert "half-ahalf-b" in messages


def test_a_long_output_line_within_the_apis_limit_is_shipped_whole(server, client, create_run, start_agent):
    run = create_run(python_command("print('y' * 60_000); print('after-the-long-line')"))
    agent = start_agent(server)

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    messages = _wait_for_logs(client, run["id"], lambda m: "after-the-long-line" in m, "the line after")
    assert "y" * 60_000 in messages


def test_an_output_line_longer_than_the_apis_limit_is_shipped_in_pieces_and_nothing_else_is_lost(
    server, client, create_run, start_agent
):
    long_run = create_run(python_command("print('x' * 250_000); print('after-the-huge-line')"))
    neighbour = create_run("echo neighbour-output")
    agent = start_agent(server)

    for run in (long_run, neighbour):
        assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    time.sleep(1.5)  # a few log flushes
    long_logs = log_messages(client, long_run["id"])
    assert "neighbour-output" in log_messages(client, neighbour["id"])
    assert "after-the-huge-line" in long_logs
    assert sum(message.count("x") for message in long_logs) >= 250_000


# --- single hook calls ------------------------------------------------------------------------


@pytest.fixture
def hook_agent(server: APIServer, tmp_path: Path) -> Iterator[Agent]:
    """A real agent object with the local backend loaded, for calling its hooks one at a time."""
    settings = AgentSettings(backend="local", name="hooks", backend_settings={"work_dir": str(tmp_path / "runs")})
    agent = Agent(settings, server.client(), get_plugin_manager("local"))
    agent.load_backend_contract()
    yield agent
    for child in state_of(agent).reaper.running():
        os.killpg(child.pid, 9)
        child.wait(5)
    agent.pm.hook.on_shutdown(agent=agent)


def _flow_run(api: APIClient, command: str) -> FlowRun:
    flow = api.register_flow(f"hook-flow-{time.monotonic_ns()}", command)
    return FlowRun.from_api(api.create_flow_run(flow_id=flow["id"]))


def _deploy(agent: Agent, run: FlowRun):
    run_config = resolve_run_config(run.run_config, "local", agent.run_config_schema)
    return agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)


def _wait_exit(agent: Agent, run: FlowRun, deployment) -> None:
    def exited():
        status = agent.pm.hook.check_deployment(flow_run=run, deployment=deployment, agent=agent)
        return status.kind == "exited"

    wait_until(exited, 10)


def test_deploying_the_same_attempt_twice_starts_the_command_once(hook_agent, client, tmp_path: Path):
    ledger = tmp_path / "ledger"
    run = _flow_run(client, f"sh -c 'echo started >> {shlex.quote(str(ledger))}'")

    first = _deploy(hook_agent, run)
    second = _deploy(hook_agent, run)
    _wait_exit(hook_agent, run, first)

    assert second.platform_id == first.platform_id
    assert second.data["run_dir"] == first.data["run_dir"]
    time.sleep(0.3)
    assert ledger.read_text().split() == ["started"]


def test_heartbeat_reaps_run_directories_finished_longer_ago_than_the_retention(hook_agent, client, tmp_path: Path):
    hook_agent.backend_settings["retention_hours"] = 1.0
    old, recent, running = (_flow_run(client, command) for command in ("true", "true", "sleep 30"))
    deployments = {run.id: _deploy(hook_agent, run) for run in (old, recent, running)}
    for run in (old, recent):
        _wait_exit(hook_agent, run, deployments[run.id])
    two_hours_ago = time.time() - 2 * 3600
    for run in (old, recent):
        claimed = client.set_flow_run_state(run.id, version=run.version, state="Submitted")
        client.set_flow_run_state(run.id, version=claimed["version"], state="Success")
    os.utime(Path(deployments[old.id].data["run_dir"]) / "exit_code", (two_hours_ago, two_hours_ago))

    hook_agent.pm.hook.heartbeat(agent=hook_agent)

    assert not Path(deployments[old.id].data["run_dir"]).exists()
    assert Path(deployments[recent.id].data["run_dir"]).is_dir()
    assert Path(deployments[running.id].data["run_dir"]).is_dir()


def test_reaping_never_loses_the_result_of_a_run_the_agent_has_not_reported_yet(
    server, client, create_run, start_agent
):
    runs = [create_run("true") for _ in range(3)]
    agent = start_agent(
        server,
        "--set", "retention_hours=0",
        env={"AGENT__AGENT__HEARTBEAT_PERIOD": "0.05", "AGENT__AGENT__MONITOR_INTERVAL": "1"},
    )  # fmt: skip

    states = [wait_for_state(client, run["id"], agent=agent)["state"] for run in runs]

    assert [state["type"] for state in states] == ["Success"] * 3, states


def test_a_cancelled_run_leaves_no_zombie_process_behind(server, client, create_run, start_agent, agent_home):
    runs = [create_run("sleep 300") for _ in range(2)]
    agent = start_agent(server, env={"AGENT__AGENT__CANCEL_GRACE_SECONDS": "1"})
    for run in runs:
        wait_for_state(client, run["id"], "Running", agent=agent)
        pgid = int((run_dir(agent_home, run["id"]) / "pid").read_text())
        wait_until(lambda pgid=pgid: len(group_members(pgid)) >= 2, 5, message="the supervisor and its sleep")
    for run in runs:
        client.cancel_flow_run(run["id"])
    for run in runs:
        assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Cancelled"
    time.sleep(2)

    zombies = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == agent.pid and fields[0] == "Z":
            zombies.append(int(stat.parent.name))
    assert zombies == []


def test_the_workload_runs_with_the_agents_interpreter_environment_unless_inherit_env_is_off(
    server, client, create_run, start_agent, tmp_path: Path
):
    dump = tmp_path / "env"
    command = python_command(
        "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('E2E_FROM_AGENT_PROCESS', 'absent'))", dump
    )
    run = create_run(command)
    agent = start_agent(server, "--set", "inherit_env=false", env={"E2E_FROM_AGENT_PROCESS": "present"})

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    assert dump.read_text() == "absent"
    assert sys.executable  # the command above ran with PATH only: an absolute interpreter path is needed
