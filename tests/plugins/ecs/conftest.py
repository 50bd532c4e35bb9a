"""Fixtures for the ecs backend's tests: the moto server, a cluster and log group per test, agents.

One moto server serves the session (``moto_server``); each test gets its own cluster, log group
and flows (task-definition families are named after flows), so tests never see each other's
tasks. :class:`~tests.plugins.ecs.runtime.TaskRuntime` runs the tasks' containers, which moto
does not.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread
from agent_core.testing.servers import APIServer
from tests.fixtures.services import aws_env
from tests.plugins.ecs.runtime import TaskRuntime

EXECUTION_ROLE = "arn:aws:iam::123456789012:role/ecsTaskExecutionRole"
IMAGE = "public.ecr.aws/docker/library/busybox:latest"
# moto answers HTTP 500 for a container without memory (ECS takes the task's): the tests' template
# gives the flow container a soft limit, which is valid on ECS too.
TEMPLATE = """\
containerDefinitions:
  - name: flow
    memoryReservation: 64
"""


def write_template(directory: Path, text: str = TEMPLATE, name: str = "task-definition.yaml") -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The moto endpoint, with this process's boto3 pointed at it (dummy credentials)."""
    for name, value in aws_env(moto_server).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    return moto_server


@pytest.fixture
def ecs(aws: str) -> Any:
    return boto3.client("ecs")


@pytest.fixture
def logs(aws: str) -> Any:
    return boto3.client("logs")


@pytest.fixture
def cluster(ecs: Any) -> Iterator[str]:
    """A cluster of this test's own, deleted after it (the session's moto server is shared)."""
    name = f"agent-test-{uuid.uuid4().hex[:10]}"
    ecs.create_cluster(clusterName=name)
    yield name
    with contextlib.suppress(ClientError):  # gone already if the test reset moto
        ecs.delete_cluster(cluster=name)


@pytest.fixture
def log_group(logs: Any) -> Iterator[str]:
    name = f"/agent-test/{uuid.uuid4().hex[:10]}"
    logs.create_log_group(logGroupName=name)
    yield name
    with contextlib.suppress(ClientError):
        logs.delete_log_group(logGroupName=name)


@pytest.fixture
def backend_settings(aws: str, cluster: str, log_group: str, tmp_path: Path) -> dict[str, Any]:
    """``[backends.ecs]`` for the tests: moto, this test's cluster and log group, Fargate on the default VPC."""
    return {
        "endpoint_url": aws,
        "cluster": cluster,
        "image": IMAGE,
        "execution_role_arn": EXECUTION_ROLE,
        "log_group": log_group,
        "state_dir": str(tmp_path / "ecs-state"),
        "task_definition_template": write_template(tmp_path),
        "output_interval": 0,
        "start_timeout": 5,
    }


@pytest.fixture
def runtime(aws: str, cluster: str) -> Iterator[TaskRuntime]:
    """The containers of this test's cluster, run as local processes."""
    with TaskRuntime(aws, cluster) as found:
        yield found


@pytest.fixture
def server(sqlite_server: APIServer) -> APIServer:
    return sqlite_server


@pytest.fixture
def client(sqlite_api: APIClient) -> APIClient:
    return sqlite_api


@pytest.fixture
def start_agent(server: APIServer, backend_settings: dict[str, Any]) -> Iterator[Callable[..., AgentThread]]:
    """``start_agent(backend={...}, **settings)``: an ecs agent polling ``server`` in a thread, stopped at the end."""
    started: list[AgentThread] = []

    def start(backend: dict[str, Any] | None = None, **settings: Any) -> AgentThread:
        settings.setdefault("name", f"ecs-test-{uuid.uuid4().hex[:8]}")
        settings.setdefault("cancel_grace_seconds", 2.0)
        settings.setdefault("monitor_interval", 0.25)  # moto works for every test of the session: spare it
        thread = AgentThread(server.url, "ecs", backend_settings={**backend_settings, **(backend or {})}, **settings)
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()
