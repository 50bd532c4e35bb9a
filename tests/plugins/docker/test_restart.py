"""An ``agent start --backend docker`` process killed with SIGKILL mid-run, then started again.

The second agent must re-attach to the container the first one started (not launch another),
ship only the output the first one had not shipped, and bring the run to Success.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.testing.harness import history_types, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from tests.plugins import cli_agents
from tests.plugins.docker.helpers import TEST_LABEL, containers_of, create_run, log_messages


def start_cli_agent(
    processes: list[subprocess.Popen[bytes]],
    server: APIServer,
    settings: dict[str, Any],
    home: Path,
    log: Path,
    *extra: str,
) -> subprocess.Popen[bytes]:
    return cli_agents.start_cli_agent(processes, "docker", server, settings, home, log, *extra, name="docker-restart")


def test_an_agent_killed_mid_run_is_replaced_by_one_that_reattaches(
    server: APIServer,
    client: APIClient,
    backend_settings: dict[str, Any],
    docker_engine: docker.DockerClient,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    settings = {**backend_settings, "auto_remove": "false"}
    assert TEST_LABEL in settings["container_labels"]
    home, log = tmp_path / "home", tmp_path / "agents.log"
    run = create_run(client, "sh -c 'echo before-kill; sleep 3; echo after-kill'")

    first = start_cli_agent(processes, server, settings, home, log)
    try:
        wait_for_state(client, run["id"], ["Running"], 20)
        # Once the first line is in the run's logs, the kill tests the shipping cursor too.
        assert wait_until(lambda: "before-kill" in log_messages(client, run["id"]), 10)
    except AssertionError:
        pytest.fail(f"first agent did not run the flow:\n{log.read_text()}")
    first.kill()
    first.wait(10)
    assert client.get_flow_run(run["id"])["state"]["type"] == "Running"

    second = start_cli_agent(processes, server, settings, home, log, "--until-idle")
    try:
        final = wait_for_final(client, run["id"], 30)
    except AssertionError:
        pytest.fail(f"second agent did not finish the run:\n{log.read_text()}")
    assert second.wait(30) == 0, log.read_text()

    assert final["state"]["type"] == "Success", final["state"]
    assert history_types(client, run["id"]).count("Submitted") == 1
    assert len(containers_of(docker_engine, run["id"])) == 1, "the restarted agent launched a second container"
    logs = log_messages(client, run["id"])
    assert "Agent docker-restart restarted and re-attached to this run" in logs
    assert logs.count("before-kill") == 1, logs
    assert logs.count("after-kill") == 1, logs
