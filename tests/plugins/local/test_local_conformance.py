"""The local backend against the backend conformance kit shipped in agent_core.testing."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import BackendConformance


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies do not count), from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces, so split after its ")".
        fields = stat.rpartition(")")[2].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


class TestLocalConformance(BackendConformance):
    backend = "local"
    capabilities = frozenset(
        {"exit_codes", "output", "cancel", "cancel_output", "reattach", "missing", "idempotent_deploy"}
    )
    not_claimed: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def backend_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"work_dir": str(tmp_path / "runs")}

    def deploy_error_run_config(self) -> dict[str, Any]:
        return {"type": "local", "working_dir": "/nonexistent/conformance"}

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        # The supervisor's pid is the workload's process group: anything left in it still runs.
        return group_alive(int(deployment.platform_id))

    def workload_count(self, flow_run_id: str, backend_settings: dict[str, Any]) -> int:
        runs = Path(backend_settings["work_dir"])
        return len([p for p in runs.iterdir() if p.name.rpartition("-")[0] == flow_run_id]) if runs.is_dir() else 0

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        os.killpg(int(deployment.platform_id), signal.SIGKILL)
        shutil.rmtree(deployment.data["run_dir"])
