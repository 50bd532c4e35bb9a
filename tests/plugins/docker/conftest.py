"""Fixtures for the docker backend's tests: the real engine, local images, agents in threads.

Every container a test makes carries the label ``agent.test=<id of the test>`` (through the
backend's ``container_labels`` setting) and is removed by that label when the test ends, so
that a failing test leaves nothing behind on the engine other sessions share. Containers use
network mode ``none`` (or ``host`` where one must reach the API on loopback).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread
from agent_core.testing.servers import APIServer
from tests.plugins.docker.helpers import TEST_LABEL, remove_labelled


@pytest.fixture
def test_id(docker_engine: docker.DockerClient) -> Iterator[str]:
    """A label value for this test's containers; they are removed at its end."""
    value = uuid.uuid4().hex[:12]
    yield value
    remove_labelled(docker_engine, value)


@pytest.fixture
def backend_settings(tmp_path: Path, busybox_image: str, test_id: str) -> dict[str, Any]:
    """``[backends.docker]`` for the tests: the busybox image, no network, never pull."""
    return {
        "image": busybox_image,
        "network_mode": "none",
        "pull_policy": "never",
        "state_dir": str(tmp_path / "docker-state"),
        "container_labels": {TEST_LABEL: test_id},
    }


@pytest.fixture
def server(sqlite_server: APIServer) -> APIServer:
    """The API server these tests talk to: SQLite (a test that needs PostgreSQL asks for it)."""
    return sqlite_server


@pytest.fixture
def client(sqlite_api: APIClient) -> APIClient:
    return sqlite_api


@pytest.fixture
def start_agent(server: APIServer, backend_settings: dict[str, Any]) -> Iterator[Callable[..., AgentThread]]:
    """``start_agent(**settings)``: a docker agent polling ``server`` in a thread, stopped at the end.

    ``settings`` are AgentSettings fields; ``backend`` (a dict) is merged into ``backend_settings``.
    """
    started: list[AgentThread] = []

    def start(backend: dict[str, Any] | None = None, **settings: Any) -> AgentThread:
        settings.setdefault("name", f"docker-test-{uuid.uuid4().hex[:8]}")
        settings.setdefault("cancel_grace_seconds", 1.0)
        thread = AgentThread(server.url, "docker", backend_settings={**backend_settings, **(backend or {})}, **settings)
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()
