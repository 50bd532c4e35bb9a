"""An agent that stops leaves no container of a finished run behind, however it stops.

``--until-idle`` and a drained stop in a thread are in ``test_docker_workload.py``; here a real
``agent start`` process stopped by SIGTERM, and an agent stopping after ``--max-polls``. The
heartbeat (which reaps too) is set to a minute, so only the shutdown can have removed them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from tests.plugins.docker.helpers import containers_of, create_run

StartAgent = Callable[..., AgentThread]


class AgentProcesses:
    """``agent start --backend docker`` processes with the tests' settings, their output in one log."""

    def __init__(self, server: APIServer, backend_settings: dict[str, Any], tmp_path: Path) -> None:
        self.server, self.backend_settings, self.home = server, backend_settings, tmp_path / "home"
        self.log = tmp_path / "agent.log"
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "agent_core.cli.main", "start", "--backend", "docker"]
        command += ["--api", self.server.url, "--name", "docker-sigterm", *extra]
        for key, value in self.backend_settings.items():
            if isinstance(value, dict):
                value = ",".join(f"{k}={v}" for k, v in value.items())
            command += ["--set", f"{key}={value}"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
        env.update(
            AGENT_HOME=str(self.home),
            PYTHONUNBUFFERED="1",
            AGENT__AGENT__MONITOR_INTERVAL="0.2",
            AGENT__AGENT__HEARTBEAT_PERIOD="60",
        )
        with self.log.open("ab") as out:
            proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        self.started.append(proc)
        return proc

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def agents(server: APIServer, backend_settings: dict[str, Any], tmp_path: Path) -> Iterator[AgentProcesses]:
    """Agent processes of the test; any still alive at the end is killed (by PID)."""
    found = AgentProcesses(server, backend_settings, tmp_path)
    yield found
    for proc in found.started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_an_agent_process_stopped_by_sigterm_removes_the_containers_of_its_finished_runs(
    client: APIClient, agents: AgentProcesses, docker_engine: docker.DockerClient
) -> None:
    finished = create_run(client, "echo finished")
    running = create_run(client, "sleep 60")
    proc = agents.start()
    try:
        assert wait_for_final(client, finished["id"], 30)["state"]["type"] == "Success"
        wait_for_state(client, running["id"], ["Running"], 30)
    except AssertionError:
        pytest.fail(f"the agent did not run the flows:\n{agents.output()}")
    assert len(containers_of(docker_engine, finished["id"])) == 1

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, agents.output()

    assert containers_of(docker_engine, finished["id"]) == []
    [still] = containers_of(docker_engine, running["id"])
    assert still.status == "running"  # its run is not over: a restarted agent re-attaches to it


def test_an_agent_stopping_after_max_polls_removes_the_containers_of_its_finished_runs(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    runs = [create_run(client, f"echo run-{n}") for n in range(2)]
    # Seven polls: the first finds the runs, the empty ones back off (0.25 s ... 8 s, about 16 s
    # in all), time enough for both runs to end before the agent stops.
    thread = start_agent(max_polls=7, heartbeat_period=60.0)
    for run in runs:
        assert wait_for_final(client, run["id"], 15)["state"]["type"] == "Success"
    assert thread.thread.is_alive(), "the agent stopped before its runs ended: the test proves nothing"
    assert all(len(containers_of(docker_engine, run["id"])) == 1 for run in runs)
    thread.thread.join(60)

    assert not thread.thread.is_alive(), "--max-polls did not stop the agent"
    assert wait_until(lambda: all(not containers_of(docker_engine, run["id"]) for run in runs), 1)
