"""The Docker daemon goes away while the agent runs, then comes back; or is not there at all.

The shared engine is never stopped: the agent talks to it through a small TCP proxy on
loopback (``tcp://127.0.0.1:PORT`` → the engine's unix socket) that the test closes, which
drops every connection and refuses new ones, and opens again on the same port. An agent with
no daemon at all is an ``agent start`` process whose ``DOCKER_HOST`` is a dead unix socket.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, free_loopback_port, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from tests.plugins import cli_agents
from tests.plugins.docker.helpers import create_run, log_messages
from tests.plugins.probes import health

ENGINE_SOCKET = "/var/run/docker.sock"


class SocketProxy:
    """Forwards TCP connections on 127.0.0.1:``port`` to a unix socket, until :meth:`close`."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.port = free_loopback_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        self._stop.clear()
        self._thread = threading.Thread(target=self._accept, args=(listener,), name="docker-proxy", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.target)
            except OSError:
                client.close()
                upstream.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[SocketProxy]:
    if not Path(ENGINE_SOCKET).exists():
        pytest.skip(f"the engine is not on {ENGINE_SOCKET}")
    running = SocketProxy(ENGINE_SOCKET)
    running.open()
    yield running
    running.close()


def test_the_agent_outlives_the_daemon_says_so_on_health_and_resumes(
    client: APIClient,
    start_agent: Callable[..., AgentThread],
    proxy: SocketProxy,
    docker_engine: object,
) -> None:
    address = f"http://127.0.0.1:{free_loopback_port()}"
    during = create_run(client, "sh -c 'sleep 3; echo finished-during-outage'")
    thread = start_agent(backend={"base_url": proxy.url}, agent_address=address, heartbeat_period=0.3)
    wait_for_state(client, during["id"], ["Running"], 20)
    assert health(address)[0] == 200

    proxy.close()
    status, body = wait_until(lambda: (found := health(address))[0] == 503 and found, 10) or health(address)
    assert status == 503, body
    assert "is unreachable" in body["problems"]["docker"], body
    assert proxy.url in body["problems"]["docker"]

    # A run deployed while the daemon is away fails, naming the problem; the agent goes on.
    refused = create_run(client, "echo never")
    thread.agent.poke()
    final = wait_for_final(client, refused["id"], 20)
    assert final["state"]["type"] == "Failed"
    assert f"the Docker daemon at {proxy.url} is unreachable" in final["state"]["message"]
    assert client.get_flow_run(during["id"])["state"]["type"] == "Running"  # not judged meanwhile
    assert thread.thread.is_alive()

    proxy.open()
    assert wait_until(lambda: health(address)[0] == 200, 10), health(address)
    assert wait_for_final(client, during["id"], 20)["state"]["type"] == "Success"
    after = create_run(client, "echo after-outage")
    thread.agent.poke()
    assert wait_for_final(client, after["id"], 20)["state"]["type"] == "Success"
    thread.stop()
    assert "finished-during-outage" in log_messages(client, during["id"])
    assert "after-outage" in log_messages(client, after["id"])


def dead_socket(path: Path) -> str:
    """A unix socket file nothing listens on (connecting is refused), as a ``DOCKER_HOST`` URL."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.close()
    return f"unix://{path}"


def polls(address: str) -> float:
    """The agent's ``agent_polls_total`` from its ``/metrics``."""
    with urllib.request.urlopen(f"{address}/metrics", timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("agent_polls_total "):
                return float(line.split()[1])
    raise AssertionError("no agent_polls_total in /metrics")


def test_an_agent_without_a_daemon_starts_claims_nothing_and_a_healthy_agent_runs_its_runs(
    server: APIServer,
    client: APIClient,
    backend_settings: dict[str, Any],
    start_agent: Callable[..., AgentThread],
    processes: list[subprocess.Popen[bytes]],
    docker_engine: object,
    tmp_path: Path,
) -> None:
    label = f"pool-{uuid.uuid4().hex[:8]}"
    dead = dead_socket(tmp_path / "dead-docker.sock")
    address = f"http://127.0.0.1:{free_loopback_port()}"
    log = tmp_path / "dead-agent.log"
    runs = [create_run(client, f"echo ran-{n}", labels=[label]) for n in range(2)]

    # The daemon is named by DOCKER_HOST only (no base_url), as an operator's environment would.
    settings = {k: v for k, v in backend_settings.items() if k != "state_dir"}
    proc = cli_agents.start_cli_agent(
        processes,
        "docker",
        server,
        settings,
        tmp_path / "home",
        log,
        "--label",
        label,
        "--agent-address",
        address,
        name="no-daemon",
        env={"DOCKER_HOST": dead, "AGENT__AGENT__READINESS_INTERVAL": "0.2"},
    )

    # It starts, and says on its readiness probe which check fails and why.
    unreachable = f"the Docker daemon at {dead} is unreachable"

    def failed_check() -> Any:
        try:
            status, body = health(address, "/api/health/ready")
        except OSError:
            return None  # not listening yet
        return status == 503 and unreachable in body["problems"].get("backend", "") and body

    body = wait_until(failed_check, 30)
    assert body, log.read_text()
    assert body["problems"]["backend"] == f"docker daemon reachable: {unreachable}: [Errno 111] Connection refused"
    # Alive: nothing to restart. Waited for, since the readiness rounds may find the daemon gone
    # before the agent's first API contact, which liveness waits for.
    assert wait_until(lambda: health(address, "/api/health/live")[0] == 200, 30), log.read_text()

    # Polling goes on, many readiness rounds pass, and it claims nothing: the runs stay Scheduled.
    seen = polls(address)
    assert wait_until(lambda: polls(address) >= seen + 3, 30), log.read_text()
    time.sleep(1.0)  # five more readiness rounds at 0.2 s
    for run in runs:
        found = client.get_flow_run(run["id"])
        assert found["state"]["type"] == "Scheduled", found["state"]
        assert found["agent_id"] is None
    assert proc.poll() is None, log.read_text()

    # A healthy agent with the same labels beside it runs them.
    healthy = start_agent(labels=[label])
    for run in runs:
        final = wait_for_final(client, run["id"], 30)
        assert final["state"]["type"] == "Success", final["state"]
        assert final["agent_id"] == healthy.agent.id
    assert health(address, "/api/health/ready")[0] == 503

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()
    text = log.read_text()
    # The failure was logged once, when it began, not at every readiness round.
    assert text.count(f"preflight docker daemon reachable failed: {unreachable}") == 1, text
    assert text.count("backend 'docker' not ready: claiming no runs until its checks pass") == 1, text
