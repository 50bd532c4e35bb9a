"""One run through a real agent process and the local backend: what state and logs it ends with."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pendulum

from agent_core.testing.servers import APIServer
from tests.e2e.conftest import (
    FINAL_STATES,
    log_messages,
    make_run_factory,
    python_command,
    read_json,
    state_history,
    wait_for_state,
    wait_until,
)


def test_a_successful_command_ends_success_with_its_output_in_the_logs(api_server: APIServer, start_agent):
    client = api_server.client()
    run = make_run_factory(client)("echo hello")
    agent = start_agent(api_server)

    final = wait_for_state(client, run["id"], agent=agent)

    assert final["state"]["type"] == "Success"
    wait_until(lambda: "hello" in log_messages(client, run["id"]), 5, message="'hello' in the run's logs")
    assert state_history(client, run["id"]) == ["Scheduled", "Submitted", "Running", "Success"]


def test_exit_code_3_fails_the_run_with_the_code_and_the_last_output(server, client, create_run, start_agent):
    run = create_run("sh -c 'echo boom; exit 3'")
    agent = start_agent(server)

    final = wait_for_state(client, run["id"], agent=agent)

    assert final["state"]["type"] == "Failed"
    assert "code 3" in final["state"]["message"]
    assert "boom" in final["state"]["message"]


def test_a_missing_executable_fails_the_run_saying_not_found(server, client, create_run, start_agent):
    run = create_run("no-such-program-e2e --flag")
    agent = start_agent(server)

    final = wait_for_state(client, run["id"], agent=agent)

    assert final["state"]["type"] == "Failed"
    assert "not found" in final["state"]["message"]
    assert "no-such-program-e2e" in final["state"]["message"]
    wait_until(
        lambda: any("not found" in line for line in log_messages(client, run["id"])), 5, message="the error in the logs"
    )


def test_a_missing_working_directory_fails_the_run_naming_it(server, client, create_run, start_agent):
    run = create_run("echo never", run_config={"type": "local", "working_dir": "/nonexistent"})
    agent = start_agent(server)

    final = wait_for_state(client, run["id"], agent=agent)

    assert final["state"]["type"] == "Failed"
    assert "/nonexistent" in final["state"]["message"]
    wait_until(
        lambda: any("/nonexistent" in line for line in log_messages(client, run["id"])), 5, message="the error in logs"
    )


def test_a_run_config_of_another_backend_fails_the_run_naming_both_types(server, client, create_run, start_agent):
    run = create_run("echo never", run_config={"type": "docker", "image": "x"})
    agent = start_agent(server)

    final = wait_for_state(client, run["id"], agent=agent)

    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert "'docker'" in message
    assert "'local'" in message
    assert state_history(client, run["id"]) == ["Scheduled", "Submitted", "Failed"]


def test_the_workload_environment_layers_agent_env_then_run_config_env_then_the_run_variables(
    server, client, create_run, start_agent, tmp_path: Path
):
    dump = tmp_path / "env.json"
    run = create_run(
        python_command("import json, os, sys; open(sys.argv[1], 'w').write(json.dumps(dict(os.environ)))", dump),
        parameters={"x": 1, "name": "e2e"},
        run_config={
            "type": "local",
            "env": {"SHARED": "from-run-config", "ONLY_RUN_CONFIG": "rc", "AGENT_FLOW_RUN_ATTEMPT": "spoofed"},
        },
    )
    agent = start_agent(
        server,
        "--env", "SHARED=from-agent",
        "--env", "ONLY_AGENT=agent",
        "--env", "AGENT_FLOW_RUN_ID=spoofed",
    )  # fmt: skip

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"

    env = read_json(dump)
    assert env["ONLY_AGENT"] == "agent"
    assert env["ONLY_RUN_CONFIG"] == "rc"
    assert env["SHARED"] == "from-run-config"  # run config env beats agent env
    assert env["AGENT_FLOW_RUN_ID"] == run["id"]  # the run's own variables beat both
    assert env["AGENT_FLOW_RUN_ATTEMPT"] == "1"
    assert json.loads(env["AGENT_FLOW_RUN_PARAMETERS"]) == {"x": 1, "name": "e2e"}
    assert env["AGENT_API_URL"] == server.url
    assert "AGENT_API_KEY" not in env  # the agent has no key


def _start_time_command(path: Path) -> str:
    """A workload that writes the time it started to ``path`` (``-I -S``: its own start-up is ~15 ms)."""
    command = python_command("import sys, time; open(sys.argv[1], 'w').write(repr(time.time()))", path)
    return command.replace(" -c ", " -I -S -c ", 1)


def test_a_run_scheduled_3s_ahead_is_claimed_on_time_not_before(server, client, create_run, start_agent):
    # The agent is up first: its start-up (seconds on a loaded machine) is not lateness. Its
    # waiting poll learns of the run at once (due within the 10 s prefetch) and holds it.
    agent = start_agent(server)
    scheduled = pendulum.now("UTC").add(seconds=3)
    run = create_run("true", scheduled_start_time=scheduled)

    assert wait_for_state(client, run["id"], timeout=20, agent=agent)["state"]["type"] == "Success"

    submitted = next(s for s in client.flow_run_states(run["id"]) if s["type"] == "Submitted")
    lateness = pendulum.parse(submitted["timestamp"]).timestamp() - scheduled.timestamp()
    # On time: never early, and late by far less than a poll interval even on a loaded
    # machine (the fine timing is measured in bench/agent_bench.py).
    assert 0 <= lateness <= 2.0, f"claimed {lateness:+.3f}s from its scheduled time"


def test_a_run_scheduled_3s_ahead_starts_its_command_on_time_not_before(
    server, client, create_run, start_agent, tmp_path: Path
):
    started = tmp_path / "started"
    agent = start_agent(server)  # up first: its start-up is not lateness
    scheduled = pendulum.now("UTC").add(seconds=3)
    run = create_run(_start_time_command(started), scheduled_start_time=scheduled)

    assert wait_for_state(client, run["id"], timeout=20, agent=agent)["state"]["type"] == "Success"

    lateness = float(started.read_text()) - scheduled.timestamp()
    assert lateness >= 0, f"started {-lateness:.3f}s before its scheduled time"
    assert lateness <= 2.0, f"started {lateness:.3f}s after its scheduled time"


def test_four_runs_due_at_the_same_moment_all_start_their_commands_on_time(
    server, client, create_run, start_agent, tmp_path: Path
):
    agent = start_agent(server)  # up first: its start-up is not lateness
    scheduled = pendulum.now("UTC").add(seconds=3)
    files = [tmp_path / f"started-{n}" for n in range(4)]
    runs = [create_run(_start_time_command(path), scheduled_start_time=scheduled) for path in files]

    for run in runs:
        assert wait_for_state(client, run["id"], timeout=20, agent=agent)["state"]["type"] == "Success"

    lateness = sorted(float(path.read_text()) - scheduled.timestamp() for path in files)
    assert lateness[0] >= 0
    assert lateness[-1] <= 2.0, f"start delays: {[round(x, 3) for x in lateness]}"


def test_runs_are_deployed_one_after_another_without_waiting_for_the_previous_to_end(
    server, client, create_run, start_agent
):
    runs = [create_run("sleep 1.5") for _ in range(3)]
    agent = start_agent(server)
    begin = time.monotonic()

    for run in runs:
        assert wait_for_state(client, run["id"], timeout=20, agent=agent)["state"]["type"] == "Success"

    assert time.monotonic() - begin < 4, "the three 1.5 s runs should overlap"


def test_a_runs_output_is_in_its_logs_by_the_time_the_run_is_final(server, client, create_run, start_agent):
    runs = {create_run(f"echo output-of-run-{n}")["id"]: f"output-of-run-{n}" for n in range(5)}
    agent = start_agent(server)
    missing: dict[str, list[str]] = {}
    checked: set[str] = set()

    def all_final() -> bool:
        for item in client.list_flow_runs():
            if item["id"] in runs and item["id"] not in checked and item["state"]["type"] in FINAL_STATES:
                checked.add(item["id"])
                messages = log_messages(client, item["id"])
                if runs[item["id"]] not in messages:
                    missing[item["id"]] = messages
        return checked == set(runs)

    wait_until(all_final, 20, interval=0.01, message=lambda: f"5 final runs\n{agent.output()}")
    assert missing == {}
