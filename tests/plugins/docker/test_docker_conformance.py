"""The docker backend against the backend conformance kit shipped in agent_core.testing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import BackendConformance
from agent_plugin_docker.options import LABEL_RUN
from tests.plugins.docker.helpers import TEST_LABEL, remove_labelled


class TestDockerConformance(BackendConformance):
    backend = "docker"
    capabilities = frozenset(
        {"exit_codes", "output", "cancel", "cancel_output", "reattach", "missing", "idempotent_deploy"}
    )
    not_claimed: ClassVar[dict[str, str]] = {}
    # `sh` as PID 1 ignores SIGTERM, so a cancel always takes the whole grace period.
    cancel_grace_seconds: ClassVar[float] = 1.0

    @pytest.fixture
    def backend_settings(
        self, tmp_path: Path, busybox_image: str, docker_engine: docker.DockerClient
    ) -> Iterator[dict[str, Any]]:
        label = f"conformance-{tmp_path.name}"
        self.engine = docker_engine  # for remove_workload (pytest binds fixtures to the test's instance)
        yield {
            "image": busybox_image,
            "network_mode": "none",
            "pull_policy": "never",
            "state_dir": str(tmp_path / "docker-state"),
            "container_labels": {TEST_LABEL: label},
        }
        remove_labelled(docker_engine, label)

    def deploy_error_run_config(self) -> dict[str, Any]:
        return {"type": "docker", "image": "agent-test-no-such-image:1", "pull_policy": "never"}

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        try:
            container = self.engine.containers.get(deployment.platform_id)
        except docker.errors.NotFound:
            return False
        return container.status in ("created", "running", "restarting", "paused")

    def workload_count(self, flow_run_id: str, backend_settings: dict[str, Any]) -> int:
        return len(self.engine.containers.list(all=True, filters={"label": f"{LABEL_RUN}={flow_run_id}"}))

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        self.engine.containers.get(deployment.platform_id).remove(force=True)
