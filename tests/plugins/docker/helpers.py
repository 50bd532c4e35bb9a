"""Helpers of the docker backend's tests (runs, logs, containers by label)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from typing import Any

import docker

from agent_core.client import APIClient
from agent_core.testing import harness

TEST_LABEL = "agent.test"


def remove_labelled(engine: docker.DockerClient, value: str) -> None:
    for container in engine.containers.list(all=True, filters={"label": f"{TEST_LABEL}={value}"}, sparse=True):
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass


def create_run(
    client: APIClient, command: str, run_config: dict[str, Any] | None = None, **kwargs: Any
) -> dict[str, Any]:
    """A flow with ``command`` and one run of it."""
    flow = client.register_flow(f"docker-{uuid.uuid4().hex[:8]}", command)
    return client.create_flow_run(flow_id=flow["id"], run_config=run_config, **kwargs)


def log_messages(client: APIClient, run_id: str) -> list[str]:
    return harness.run_log_messages(client, run_id)


def containers_of(engine: docker.DockerClient, run_id: str) -> list[Any]:
    # ignore_removed: the agent may remove a listed container before the SDK inspects it.
    return engine.containers.list(all=True, filters={"label": f"agent.flow_run_id={run_id}"}, ignore_removed=True)


class RegistryListener:
    """A TCP listener on loopback standing where a registry would be: it counts the engine's
    connections (a pull attempt) and closes each at once, so a pull fails fast."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self.port = self._socket.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, name="registry-listener", daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._socket.close()
        self._thread.join(5)


def engine_events(engine: docker.DockerClient, since: float, *, run_id: str, image: str) -> list[tuple[str, str]]:
    """``(type, action)`` of the engine's events since ``since``: the run's containers, and the image's
    own events (a pull); not other containers of that image, which other tests may be running."""
    until = f"{time.time():.6f}"  # in the past: the engine answers from its buffer and ends
    found = []
    for filters in ({"label": f"agent.flow_run_id={run_id}"}, {"type": "image", "image": image}):
        stream = engine.events(since=int(since) - 1, until=until, filters=filters, decode=True)
        try:
            found += [(event.get("Type", ""), event.get("Action", "")) for event in stream]
        finally:
            stream.close()
    return found
