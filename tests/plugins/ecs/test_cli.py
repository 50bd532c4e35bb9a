"""``agent start --backend ecs`` as a real process on moto: runs to Success, and a SIGKILLed agent replaced.

The task runtime runs in the test process (the containers' stand-in); the agent process only
talks to the API server and to moto, as it would to AWS.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

from agent_core.client import APIClient
from agent_core.testing.harness import history_types, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from tests.plugins import cli_agents
from tests.plugins.ecs.helpers import create_run, log_messages
from tests.plugins.ecs.runtime import TaskRuntime


def start(
    processes: list[subprocess.Popen[bytes]], server: APIServer, settings: dict[str, Any], home: Path, *extra: str
) -> subprocess.Popen[bytes]:
    log = home.parent / "agents.log"
    return cli_agents.start_cli_agent(processes, "ecs", server, settings, home, log, *extra, name="ecs-cli")


def agent_log(home: Path) -> str:
    return (home.parent / "agents.log").read_text(errors="replace")


def test_agent_start_on_moto_runs_flows_to_success(
    server: APIServer,
    client: APIClient,
    aws: str,
    cluster: str,
    backend_settings,
    runtime: TaskRuntime,
    processes,
    tmp_path,
) -> None:
    runs = [create_run(client, f"sh -c 'echo cli-run-{n}'") for n in range(3)]
    settings = {
        "endpoint_url": aws,
        "cluster": cluster,
        "image": backend_settings["image"],
        "execution_role_arn": backend_settings["execution_role_arn"],
        "log_group": backend_settings["log_group"],
        "task_definition_template": backend_settings["task_definition_template"],
    }
    proc = start(processes, server, settings, tmp_path / "home", "--until-idle")
    assert proc.wait(60) == 0, agent_log(tmp_path / "home")
    for n, run in enumerate(runs):
        final = client.get_flow_run(run["id"])
        assert final["state"]["type"] == "Success", (final["state"], agent_log(tmp_path / "home"))
        assert f"cli-run-{n}" in log_messages(client, run["id"])


def test_an_agent_killed_mid_run_is_replaced_by_one_that_reattaches(
    server: APIServer, client: APIClient, backend_settings, runtime: TaskRuntime, processes, tmp_path, ecs, cluster
) -> None:
    settings = {k: v for k, v in backend_settings.items() if k != "state_dir"}
    home = tmp_path / "home"
    run = create_run(client, "sh -c 'echo before-kill; sleep 3; echo after-kill'")
    first = start(processes, server, settings, home)
    wait_for_state(client, run["id"], ["Running"], 30)
    assert wait_until(lambda: "before-kill" in log_messages(client, run["id"]), 20), agent_log(home)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert client.get_flow_run(run["id"])["state"]["type"] == "Running"

    second = start(processes, server, settings, home)
    final = wait_for_final(client, run["id"], 40)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    assert final["state"]["type"] == "Success", (final["state"], agent_log(home))
    assert history_types(client, run["id"]).count("Submitted") == 1
    assert len(runtime.started) == 1  # one task: re-attached, not launched again
    messages = log_messages(client, run["id"])
    assert messages.count("before-kill") == 1 and messages.count("after-kill") == 1
    assert any("re-attached" in m for m in messages)
