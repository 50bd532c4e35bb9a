"""The workload contract on the local backend: the shared environment table, keys, output off.

The environment table (``agent_core.testing.workload_env``) runs through an agent in a thread
of this process, so that the in-test ``flow_run_env`` plugin can join it and the agent's own
process environment is this one's (set with ``monkeypatch``); the rest through real
``agent start`` processes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent_core.client import APIClient
from agent_core.testing import workload_env
from agent_core.testing.harness import AgentThread, wait_for_final
from agent_core.testing.servers import APIServer
from tests.e2e.conftest import log_messages, python_command, read_json, run_dir, wait_for_state, wait_until


def test_the_workload_sees_the_environment_of_the_shared_table_with_the_agents_own_beneath(
    sqlite_server: APIServer, sqlite_api: APIClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = workload_env.create_agent_key(sqlite_api)
    for name, value in workload_env.process_environment(key).items():
        monkeypatch.setenv(name, value)
    flow = sqlite_api.register_flow("env-table", workload_env.dump_command(sys.executable))
    run = sqlite_api.create_flow_run(
        flow_id=flow["id"],
        parameters=workload_env.PARAMETERS,
        run_config={"type": "local", "env": workload_env.run_config_env()},
    )
    with AgentThread(
        sqlite_server.url,
        "local",
        key=key,
        plugins=[workload_env.EnvTableHook()],
        backend_settings={"work_dir": str(tmp_path / "runs")},
        **workload_env.agent_settings(),
    ):
        final = wait_for_final(sqlite_api, run["id"])

    assert final["state"]["type"] == "Success", final["state"]
    env = workload_env.parse_dump(log_messages(sqlite_api, run["id"]))
    assert env is not None, log_messages(sqlite_api, run["id"])
    assert workload_env.mismatches(env, final, key, inherits=True) == []
    assert env["HOME"] == str(Path.home())  # the rest of the agent's environment is inherited


@pytest.mark.parametrize(
    ("settings", "seen"),
    [
        ({}, "absent"),
        ({"AGENT__AGENT__WORKLOAD_API_KEY": "agk_for_workloads"}, "agk_for_workloads"),
    ],
    ids=["not-by-default", "workload-key"],
)
def test_a_workload_gets_the_workload_key_and_never_the_agents_own_by_default(
    server, client, create_run, start_agent, tmp_path: Path, settings: dict[str, str], seen: str
) -> None:
    runner_key = workload_env.create_agent_key(client)
    dump = tmp_path / "env.json"
    run = create_run(python_command("import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))", dump))
    agent = start_agent(server, "--key", runner_key, env={"AGENT_RUNNER_KEY_COPY": runner_key, **settings})

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    env = read_json(dump)
    assert env.get("AGENT_API_KEY", "absent") == seen
    assert runner_key not in env.values()  # nor through a variable that held it


def test_with_output_off_on_the_agent_only_its_own_lines_reach_the_runs_logs(
    server, client, create_run, start_agent, agent_home: Path
) -> None:
    run = create_run("sh -c 'echo kept-on-this-machine; echo also-kept >&2; exit 3'")
    agent = start_agent(server, env={"AGENT__AGENT__SHIP_OUTPUT": "false"})

    final = wait_for_state(client, run["id"], agent=agent)
    agent.end()  # flushes the run logs

    assert final["state"]["type"] == "Failed"
    assert final["state"]["message"] == "Exited with code 3"  # no output tail either
    messages = log_messages(client, run["id"])
    assert any(m.startswith("Submitted for execution: local process") for m in messages)
    assert "kept-on-this-machine" not in messages and "also-kept" not in messages
    # The output is still on the agent's machine.
    assert "kept-on-this-machine" in (run_dir(agent_home, run["id"]) / "output.log").read_text()


def test_a_run_config_may_turn_output_off_but_not_on_against_the_agent(server, client, create_run, start_agent):
    off = create_run("echo from-the-quiet-run", run_config={"type": "local", "ship_output": False})
    on = create_run("echo from-the-ordinary-run")
    agent = start_agent(server)

    for run in (off, on):
        assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    wait_until(lambda: "from-the-ordinary-run" in log_messages(client, on["id"]), 10, message="the ordinary output")
    agent.end()

    assert "from-the-quiet-run" not in log_messages(client, off["id"])

    forced = create_run("echo forced-on", run_config={"type": "local", "ship_output": True})
    quiet_agent = start_agent(server, env={"AGENT__AGENT__SHIP_OUTPUT": "false"})
    assert wait_for_state(client, forced["id"], agent=quiet_agent)["state"]["type"] == "Success"
    quiet_agent.end()
    assert "forced-on" not in log_messages(client, forced["id"])


def test_a_null_in_the_run_config_removes_a_variable_the_agent_inherited(
    server, client, create_run, start_agent, tmp_path: Path
):
    dump = tmp_path / "env.json"
    run = create_run(
        python_command("import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))", dump),
        run_config={"type": "local", "env": {"INHERITED_BY_THE_AGENT": None}},
    )
    agent = start_agent(server, env={"INHERITED_BY_THE_AGENT": "agent", "ALSO_INHERITED": "agent"})

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    env = read_json(dump)
    assert "INHERITED_BY_THE_AGENT" not in env
    assert env["ALSO_INHERITED"] == "agent"
    assert json.loads(env["AGENT_LABELS"]) == []
