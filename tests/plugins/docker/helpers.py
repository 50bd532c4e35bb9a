"""Helpers of the docker backend's tests (runs, logs, containers by label)."""

from __future__ import annotations

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
