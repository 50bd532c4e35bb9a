"""The local backend's hook implementations: thin, each handing over to the module that does the work.

``launch`` starts runs, ``process`` watches and stops supervisors, ``reaper`` waits for them,
``output`` ships what they print, ``retention`` deletes old run directories.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.errors import StartupError
from agent_plugin_local import output, process, retention
from agent_plugin_local.launch import SHELL, deployment, launch
from agent_plugin_local.rundir import RunDir, run_dirs, work_dir
from agent_plugin_local.schemas import LocalRunConfigSchema, LocalSettingsSchema
from agent_plugin_local.state import state_of

WORK_DIR_FIX = "make it writable, or choose another: --set work_dir=PATH (or [backends.local])"

# --- start-up -------------------------------------------------------------------------------


@hookimpl
def settings_schema() -> LocalSettingsSchema:
    return LocalSettingsSchema()


@hookimpl
def run_config_schema() -> LocalRunConfigSchema:
    return LocalRunConfigSchema()


@hookimpl
def on_startup(agent: Any) -> None:
    directory = work_dir(agent)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the local backend's work_dir {directory}: {exc.strerror}; "
            "choose another with --set work_dir=PATH"
        ) from None
    state_of(agent).reaper.start()


@hookimpl
def preflight(agent: Any) -> list[CheckResult]:
    """Cheap (a few file-system looks), and never raises: it runs for readiness too."""
    try:
        directory = work_dir(agent)
        # The agent creates work_dir (and a missing $AGENT_HOME) at start-up: what matters is
        # that the nearest folder that exists lets it.
        probe = directory
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        writable = probe.is_dir() and os.access(probe, os.W_OK)
        detail = str(directory) if directory.exists() else f"{directory} (created at start-up in {probe})"
        shell_ok = os.access(SHELL, os.X_OK)
        return [
            CheckResult(
                "work_dir writable",
                writable,
                detail if writable else f"{directory}: {probe} is not a writable folder",
                fix="" if writable else WORK_DIR_FIX,
            ),
            CheckResult(
                "shell for the supervisor",
                shell_ok,
                SHELL,
                fix="" if shell_ok else f"the supervisor needs a POSIX shell at {SHELL}",
            ),
        ]
    except Exception as exc:
        return [CheckResult("work_dir writable", False, f"cannot check: {exc}", fix=WORK_DIR_FIX)]


@hookimpl
def list_deployments(agent: Any) -> list[LiveDeployment]:
    found = []
    for rd in run_dirs(work_dir(agent)):
        if rd.exit_code() is None and not process.alive(agent, rd):
            continue
        command = rd.spec().get("command", "")
        found.append(LiveDeployment(rd.run_id, rd.attempt, deployment(rd, rd.pid(), command)))
    return found


# --- deployment -----------------------------------------------------------------------------


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: dict[str, Any], agent: Any) -> Deployment:
    return launch(agent, flow_run, run_config)


def _run_dir(deployment: Deployment) -> RunDir:
    return RunDir(Path(deployment.data["run_dir"]))


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
    rd = _run_dir(deployment)
    if not rd.path.is_dir():
        return DeploymentStatus.missing(f"its run directory {rd.path} is gone")
    output.ship(agent, flow_run, rd)
    code = rd.exit_code()
    if code is None and not process.alive(agent, rd):
        code = rd.exit_code()  # it may have finished between the two looks
        if code is None:
            output.ship(agent, flow_run, rd, final=True)
            return DeploymentStatus.exited(137, "the workload and its supervisor were killed")
    if code is None:
        return DeploymentStatus.running()
    output.ship(agent, flow_run, rd, final=True)
    reason = f"killed by signal {code - 128}" if code > 128 else ""
    return DeploymentStatus.exited(code, reason)


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str] | None:
    return output.tail(agent, flow_run, _run_dir(deployment), tail)


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
    rd = _run_dir(deployment)
    stopped = process.stop(agent, rd, grace_seconds)
    # What the workload printed while stopping: once this returns, the run is Cancelled and
    # check_deployment (which ships output otherwise) is never called for it again.
    output.ship(agent, flow_run, rd, final=True)
    return stopped


# --- housekeeping and shutdown --------------------------------------------------------------


@hookimpl
def heartbeat(agent: Any) -> None:
    """Remove run directories of finished runs that ended longer ago than ``retention_hours``."""
    retention.remove_expired(agent)


@hookimpl
def on_shutdown(agent: Any) -> None:
    """Stop the reaper thread; running workloads go on (a restarted agent re-attaches to them)."""
    state_of(agent).reaper.close()
