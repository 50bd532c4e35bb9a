"""Deleting the run directories of finished runs once they are older than ``retention_hours``."""

from __future__ import annotations

import shutil
import time
from typing import Any

from agent_core.errors import AgentError, NotFound
from agent_core.states import FINAL_STATES
from agent_plugin_local.rundir import RunDir, run_dirs, work_dir


def remove_expired(agent: Any) -> None:
    """Only once the API says the run is final: until then the monitor may still need the exit
    code (an agent that was down, an API that was away when the workload ended)."""
    cutoff = time.time() - agent.backend_settings.get("retention_hours", 24.0) * 3600
    for rd in run_dirs(work_dir(agent)):
        try:
            finished = (rd.path / "exit_code").stat().st_mtime
        except OSError:
            continue
        if finished >= cutoff or not _run_is_over(agent, rd):
            continue
        shutil.rmtree(rd.path, ignore_errors=True)


def _run_is_over(agent: Any, rd: RunDir) -> bool:
    try:
        run = agent.client.get_flow_run(rd.run_id)
    except NotFound:
        return True
    except AgentError:
        return False  # the API is away: keep everything until it can tell
    return run["state"]["type"] in FINAL_STATES or run["attempt"] != rd.attempt
