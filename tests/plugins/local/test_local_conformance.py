"""The local backend against the backend conformance suite shipped in agent_core.testing."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from agent_core.models import Deployment
from agent_core.testing.conformance import BackendConformance


class TestLocalConformance(BackendConformance):
    backend = "local"
    capabilities = frozenset({"exit_codes", "cancel", "reattach", "missing"})

    @pytest.fixture
    def backend_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"work_dir": str(tmp_path / "runs")}

    def deploy_error_run_config(self) -> dict[str, Any]:
        return {"type": "local", "working_dir": "/nonexistent/conformance"}

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        os.killpg(int(deployment.platform_id), signal.SIGKILL)
        shutil.rmtree(deployment.data["run_dir"])
