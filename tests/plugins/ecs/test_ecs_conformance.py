"""The ecs backend against the backend conformance kit shipped in agent_core.testing, on moto.

moto reports every container exit code as 0, so ``exit_codes`` is declared not claimed here,
with that reason (non-zero exits, stop codes and the output tail of a failure are covered
against AWS's documented answers in ``test_stubbed.py``). The tasks' containers run as local
processes (``TaskRuntime``), which the platform probes ask.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import boto3
import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import BackendConformance
from agent_plugin_ecs.names import TAG_RUN
from tests.plugins.ecs.conftest import EXECUTION_ROLE, IMAGE, write_template
from tests.plugins.ecs.runtime import TaskRuntime, reset_moto


class TestEcsConformance(BackendConformance):
    backend = "ecs"
    capabilities = frozenset({"output", "cancel", "reattach", "missing"})
    not_claimed: ClassVar[dict[str, str]] = {
        "exit_codes": "moto reports every container exit code as 0 (covered against AWS's documented "
        "describe_tasks answers in test_stubbed.py)",
        "cancel_output": "moto marks a task STOPPED as soon as stop_task is called, before its container has "
        "stopped and written its last lines, so the backend's last look finds them not yet there",
        "idempotent_deploy": "moto ignores run_task's clientToken, with which real ECS refuses a second task "
        "for the same attempt",
    }

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

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        # The container is a local process of the runtime: ask it, not moto's task status.
        proc = self.runtime.processes.get(deployment.platform_id)
        if proc is not None:
            return proc.poll() is None
        tasks = boto3.client("ecs").describe_tasks(cluster=self.cluster, tasks=[deployment.platform_id])["tasks"]
        return any(task["lastStatus"] != "STOPPED" for task in tasks)

    def workload_count(self, flow_run_id: str, backend_settings: dict[str, Any]) -> int:
        ecs = boto3.client("ecs")
        arns = ecs.list_tasks(cluster=self.cluster).get("taskArns") or []
        arns += ecs.list_tasks(cluster=self.cluster, desiredStatus="STOPPED").get("taskArns") or []
        if not arns:
            return 0
        tasks = ecs.describe_tasks(cluster=self.cluster, tasks=sorted(set(arns)), include=["TAGS"])["tasks"]
        return sum(1 for task in tasks if {"key": TAG_RUN, "value": flow_run_id} in (task.get("tags") or []))

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        # ECS forgets the task (as it does an hour after a task stops): moto forgets everything,
        # and the test's cluster comes back empty.
        self.runtime.kill_all()
        reset_moto(self.endpoint)
        boto3.client("ecs").create_cluster(clusterName=self.cluster)
