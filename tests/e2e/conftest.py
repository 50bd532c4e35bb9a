"""Helpers for the end-to-end tests: real API servers, real ``agent`` processes, real workloads.

Every agent here is a subprocess of ``python -m agent_core.cli.main start`` with its own
``AGENT_HOME`` under the test's ``tmp_path``; the ``start_agent`` fixture always ends the
processes it started (SIGTERM, then SIGKILL) and the local workloads they left behind.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent_core.client import APIClient
from agent_core.testing import harness
from agent_core.testing.servers import APIServer
from agent_plugin_local.process import SUPERVISOR

AGENT_CLI = [sys.executable, "-m", "agent_core.cli.main"]
FINAL_STATES = ("Success", "Failed", "Cancelled")
READY_LINE = "Waiting for flow runs..."
# The monitor checks workloads every second by default; faster here so tests take less time.
MONITOR_INTERVAL = "0.2"

T = TypeVar("T")


# --- waiting ---------------------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.05,
    message: str | Callable[[], str] = "condition",
) -> T:
    """Call ``predicate`` until it returns something truthy (returned); fail after ``timeout`` s."""
    value = harness.wait_until(predicate, timeout, interval)
    if not value:
        text = message() if callable(message) else message
        pytest.fail(f"timed out after {timeout:g}s waiting for {text}", pytrace=False)
    return value


def run_state(client: APIClient, run_id: str) -> str:
    return client.get_flow_run(run_id)["state"]["type"]


def wait_for_state(
    client: APIClient,
    run_id: str,
    states: str | Iterable[str] = FINAL_STATES,
    timeout: float = 30.0,
    *,
    interval: float = 0.05,
    agent: AgentProcess | None = None,
) -> dict[str, Any]:
    """The run once its state is one of ``states``; fails with its last state (and agent output)."""
    wanted = {states} if isinstance(states, str) else set(states)
    last: dict[str, Any] = {}

    def reached() -> dict[str, Any] | None:
        last.update(client.get_flow_run(run_id))
        return dict(last) if last["state"]["type"] in wanted else None

    def why() -> str:
        text = f"run {run_id} to be {sorted(wanted)}; it is {last.get('state')}"
        if agent is not None:
            text += f"\n--- agent output ---\n{agent.output()[-4000:]}\n--- agent stderr ---\n{agent.errors()[-2000:]}"
        return text

    return wait_until(reached, timeout, interval=interval, message=why)


def log_messages(client: APIClient, run_id: str) -> list[str]:
    return harness.run_log_messages(client, run_id)


def state_history(client: APIClient, run_id: str) -> list[str]:
    return [entry["type"] for entry in client.flow_run_states(run_id)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- processes -------------------------------------------------------------------------------


def _clean_environ() -> dict[str, str]:
    """This process's environment without agent settings that could leak into a test."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENT__", "AGENT_HOME", "AGENT_CONFIG", "AGENT_DISABLE", "AGENT_DEBUG"))
    }


@dataclass
class AgentProcess:
    """An ``agent start`` subprocess with its output in files."""

    proc: subprocess.Popen[bytes]
    name: str
    home: Path
    stdout_path: Path
    stderr_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def errors(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        """The exit code; fails the test if the agent is still running after ``timeout`` s."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(
                f"agent {self.name} still running after {timeout:g}s\n--- output ---\n{self.output()[-4000:]}",
                pytrace=False,
            )

    def wait_for_output(self, text: str, timeout: float = 15.0) -> None:
        def found() -> bool:
            if text in self.output():
                return True
            if not self.alive():
                pytest.fail(
                    f"agent {self.name} exited ({self.proc.returncode}) before printing {text!r}\n"
                    f"--- output ---\n{self.output()[-4000:]}\n--- stderr ---\n{self.errors()[-4000:]}",
                    pytrace=False,
                )
            return False

        wait_until(found, timeout, message=lambda: f"{text!r} in the output of agent {self.name}:\n{self.output()}")

    def end(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit within ``timeout`` s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)


def workload_pids(home: Path) -> list[int]:
    """Supervisor pids (= process groups) of the local runs under ``home`` that are still alive."""
    pids = []
    for pid_file in (home / "local-runs").glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if str(SUPERVISOR).encode() in cmdline and str(pid_file.parent).encode() in cmdline:
                pids.append(pid)
    return pids


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is left (zombies included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of the process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def run_dir(home: Path, run_id: str, attempt: int = 1) -> Path:
    return home / "local-runs" / f"{run_id}-{attempt}"


@pytest.fixture
def agent_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def agent_env(agent_home: Path) -> dict[str, str]:
    """Environment of agent and CLI subprocesses: a private AGENT_HOME, no inherited agent settings."""
    return {
        **_clean_environ(),
        "AGENT_HOME": str(agent_home),
        "PYTHONUNBUFFERED": "1",
        "AGENT__AGENT__MONITOR_INTERVAL": MONITOR_INTERVAL,
    }


@pytest.fixture
def start_agent(agent_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """``start_agent(server, *args, name=..., env={...}, home=..., ready=True)``: a running agent.

    ``server`` is an :class:`APIServer` or an API URL (``None``: no ``--api``, the embedded API).
    With ``ready`` it waits for the start-up banner. At teardown every agent started is ended
    and so is every workload its local backend left running.
    """
    started: list[AgentProcess] = []
    counter = itertools.count(1)

    def start(
        server: APIServer | str | None,
        *args: str,
        name: str | None = None,
        env: dict[str, str] | None = None,
        home: Path | None = None,
        ready: bool = True,
        backend: str = "local",
    ) -> AgentProcess:
        number = next(counter)
        name = name or f"e2e-agent-{number}"
        full_env = {**agent_env, **(env or {})}
        if home is not None:
            full_env["AGENT_HOME"] = str(home)
        command = [*AGENT_CLI, "start", "--backend", backend, "--name", name]
        if server is not None:
            command += ["--api", server if isinstance(server, str) else server.url]
        command += list(args)
        out = tmp_path / f"agent-{number}-{name}.out"
        err = tmp_path / f"agent-{number}-{name}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(
                command, env=full_env, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr
            )
        agent = AgentProcess(proc, name, Path(full_env["AGENT_HOME"]), out, err, command)
        started.append(agent)
        if ready:
            agent.wait_for_output(READY_LINE)
        return agent

    yield start

    for agent in started:
        agent.end()
    for home in {agent.home for agent in started}:
        for pgid in workload_pids(home):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


@pytest.fixture
def run_cli(agent_env: dict[str, str], tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_cli("runs", "list", env={...}, timeout=60)``: an ``agent`` command run to its end."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*AGENT_CLI, *args],
            env={**agent_env, **(env or {})},
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


# --- API -------------------------------------------------------------------------------------


@pytest.fixture
def server(sqlite_server: APIServer) -> APIServer:
    """The API server these tests talk to: SQLite (a test that needs PostgreSQL asks for it)."""
    return sqlite_server


@pytest.fixture
def client(sqlite_api: APIClient) -> APIClient:
    return sqlite_api


RunFactory = Callable[..., dict[str, Any]]


def make_run_factory(client: APIClient) -> RunFactory:
    counter = itertools.count(1)

    def create(command: str, **kwargs: Any) -> dict[str, Any]:
        """Register a flow running ``command`` and create one run of it (``kwargs`` as the client's)."""
        flow = client.register_flow(f"e2e-flow-{next(counter)}", command)
        return client.create_flow_run(flow_id=flow["id"], **kwargs)

    return create


@pytest.fixture
def create_run(client: APIClient) -> RunFactory:
    return make_run_factory(client)


def python_command(code: str, *args: str | Path) -> str:
    """A flow command running ``code`` with this interpreter (commands are split with shlex)."""
    import shlex

    return shlex.join([sys.executable, "-c", code, *map(str, args)])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())
