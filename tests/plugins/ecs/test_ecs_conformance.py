"""The ecs backend against the backend conformance suite shipped in agent_core.testing, on moto.

moto reports every container exit code as 0, so ``exit_codes`` is not claimed here (non-zero
exits, stop codes and the output tail of a failure are covered against AWS's documented answers
in ``test_stubbed.py``). The tasks' containers run as local processes (``TaskRuntime``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import BackendConformance
from tests.plugins.ecs.conftest import EXECUTION_ROLE, IMAGE, write_template
from tests.plugins.ecs.runtime import TaskRuntime, reset_moto


class TestEcsConformance(BackendConformance):
    backend = "ecs"
    capabilities = frozenset({"cancel", "reattach", "missing"})

    @pytest.fixture
    def backend_settings(self, aws: str, cluster: str, log_group: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
        self.endpoint, self.cluster, self.log_group = aws, cluster, log_group
        with TaskRuntime(aws, cluster) as runtime:
            self.runtime = runtime
            yield {
                "endpoint_url": aws,
                "cluster": cluster,
                "image": IMAGE,
                "execution_role_arn": EXECUTION_ROLE,
                "log_group": log_group,
                "state_dir": str(tmp_path / "ecs-state"),
                "task_definition_template": write_template(tmp_path),
                "output_interval": 0,
            }

    def deploy_error_run_config(self) -> dict[str, Any]:
        return {"type": "ecs", "task_definition_arn": "agent-conformance-no-such-family:1"}

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        # ECS forgets the task (as it does an hour after a task stops): moto forgets everything,
        # and the test's cluster comes back empty.
        self.runtime.kill_all()
        reset_moto(self.endpoint)
        boto3.client("ecs").create_cluster(clusterName=self.cluster)
