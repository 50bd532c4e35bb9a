"""The ``local`` backend: each flow run is a subprocess on the agent's machine.

A plain module of ``@hookimpl`` functions (entry point ``local`` in ``agent.backends``).
Each run gets a run directory (see :mod:`agent_plugin_local.rundir`) and a small supervisor
process in a session of its own, so that the workload survives an agent restart and its exit
code is never lost; output is shipped to the run's logs from the monitor thread.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.config import agent_home
from agent_core.errors import AgentError, DeploymentError, NotFound, StartupError
from agent_core.states import FINAL_STATES
from agent_plugin_local.rundir import RunDir
from agent_plugin_local.schemas import LocalRunConfigSchema, LocalSettingsSchema

__version__ = "0.1.0"

BACKEND = "local"
# Run as a file with -I -S, not with -m: importing this package (and agent-core with it) would
# cost ~175 ms before every workload starts; the supervisor needs the standard library only.
SUPERVISOR = Path(__file__).with_name("supervisor.py")


def _work_dir(agent: Any) -> Path:
    configured = agent.backend_settings.get("work_dir")
    return Path(configured).expanduser() if configured else agent_home() / "local-runs"


def _children(agent: Any) -> dict[str, subprocess.Popen[bytes]]:
    return agent.plugin_state(BACKEND).setdefault("children", {})


def _run_dir(deployment: Deployment) -> RunDir:
    return RunDir(Path(deployment.data["run_dir"]))


def _deployment(rd: RunDir, pid: int | None, command: str) -> Deployment:
    return Deployment(
        backend=BACKEND,
        platform_id=str(pid or ""),
        info=f"local process {pid} ({command})",
        data={"run_dir": str(rd.path)},
    )


# --- start-up -------------------------------------------------------------------------------


@hookimpl
def settings_schema() -> LocalSettingsSchema:
    return LocalSettingsSchema()


@hookimpl
def run_config_schema() -> LocalRunConfigSchema:
    return LocalRunConfigSchema()


@hookimpl
def on_startup(agent: Any) -> None:
    work_dir = _work_dir(agent)
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the local backend's work_dir {work_dir}: {exc.strerror}; "
            "choose another with --set work_dir=PATH"
        ) from None


@hookimpl
def preflight(agent: Any) -> list[CheckResult]:
    work_dir = _work_dir(agent)
    # The agent creates work_dir (and a missing $AGENT_HOME) at start-up: what matters is
    # that the nearest folder that exists lets it.
    probe = work_dir
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    writable = probe.is_dir() and os.access(probe, os.W_OK)
    detail = str(work_dir) if work_dir.exists() else f"{work_dir} (created at start-up in {probe})"
    return [
        CheckResult(
            "work_dir writable",
            writable,
            detail if writable else f"{work_dir}: {probe} is not a writable folder",
            fix="" if writable else "make it writable, or choose another: --set work_dir=PATH (or [backends.local])",
        ),
        CheckResult(
            "python for the supervisor",
            Path(sys.executable).exists(),
            sys.executable,
            fix="" if Path(sys.executable).exists() else "reinstall agent-plugin-local in a working Python",
        ),
    ]


@hookimpl
def list_deployments(agent: Any) -> list[LiveDeployment]:
    work_dir = _work_dir(agent)
    if not work_dir.is_dir():
        return []
    found = []
    for path in sorted(work_dir.iterdir()):
        if not path.is_dir() or "-" not in path.name:
            continue
        rd = RunDir(path)
        try:
            attempt = rd.attempt
        except ValueError:
            continue
        if rd.exit_code() is None and not _alive(agent, rd):
            continue
        command = rd.spec().get("command", "")
        found.append(LiveDeployment(rd.run_id, attempt, _deployment(rd, rd.pid(), command)))
    return found


# --- deployment -----------------------------------------------------------------------------


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: dict[str, Any], agent: Any) -> Deployment:
    settings = agent.backend_settings
    command = run_config.get("command") or flow_run.command
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise DeploymentError(f"cannot parse the command {command!r}: {exc}") from None
    if not argv:
        raise DeploymentError("the flow's command is empty")

    cwd = run_config.get("working_dir")
    if cwd and not Path(cwd).expanduser().is_dir():
        raise DeploymentError(f"working directory {cwd!r} does not exist")
    cwd = str(Path(cwd).expanduser()) if cwd else None

    env = dict(os.environ) if settings.get("inherit_env", True) else {"PATH": os.environ.get("PATH", os.defpath)}
    env.setdefault("PYTHONUNBUFFERED", "1")  # so output reaches the run's logs as it is printed
    env.update(agent.flow_run_env(flow_run, run_config.get("env")))
    if settings.get("import_paths"):
        env["PYTHONPATH"] = os.pathsep.join([*settings["import_paths"], *filter(None, [env.get("PYTHONPATH")])])

    executable = _resolve(argv[0], env.get("PATH", os.defpath), cwd)
    if executable is None:
        raise DeploymentError(f"executable {argv[0]!r} not found (PATH={env.get('PATH', '')})")

    rd = RunDir.of(_work_dir(agent), flow_run.id, flow_run.attempt)
    if not rd.create():
        agent.write_run_log(
            flow_run, f"Attempt {flow_run.attempt} was already launched in {rd.path}; not starting it twice"
        )
        return _deployment(rd, rd.pid(), rd.spec().get("command", command))
    rd.write_spec({"command": command, "argv": argv, "cwd": cwd, "run_id": flow_run.id, "attempt": flow_run.attempt})
    with rd.output.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(SUPERVISOR), str(rd.path), "--", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cancel signals reach the whole tree
        )
    rd.write_pid(proc.pid)
    _children(agent)[rd.key] = proc
    return _deployment(rd, proc.pid, command)


def _resolve(program: str, path: str, cwd: str | None) -> str | None:
    if os.sep in program:
        candidate = Path(cwd or ".") / program if not os.path.isabs(program) else Path(program)
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path)


# --- following a deployment -----------------------------------------------------------------


def _alive(agent: Any, rd: RunDir) -> bool:
    proc = _children(agent).get(rd.key)
    if proc is not None:
        return proc.poll() is None
    pid = rd.pid()
    if pid is None:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    # The pid may have been reused by an unrelated process since.
    return str(SUPERVISOR).encode() in cmdline and str(rd.path).encode() in cmdline


def _ship_output(agent: Any, flow_run: FlowRun, rd: RunDir, *, final: bool = False) -> None:
    while True:
        lines, offset = rd.new_output(final=final)
        if not lines:
            return
        show = agent.backend_settings.get("show_flow_logs", False)
        for line in lines:
            agent.write_run_log(flow_run, line)
            if show:
                agent.logger.info("[%s] %s", flow_run.name or flow_run.id, line)
        rd.set_shipped(offset)


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
    rd = _run_dir(deployment)
    if not rd.path.is_dir():
        return DeploymentStatus.missing(f"its run directory {rd.path} is gone")
    _ship_output(agent, flow_run, rd)
    code = rd.exit_code()
    if code is None and not _alive(agent, rd):
        code = rd.exit_code()  # it may have finished between the two looks
        if code is None:
            _ship_output(agent, flow_run, rd, final=True)
            return DeploymentStatus.exited(137, "the workload and its supervisor were killed")
    if code is None:
        return DeploymentStatus.running()
    _ship_output(agent, flow_run, rd, final=True)
    _reap(agent, rd)
    reason = f"killed by signal {code - 128}" if code > 128 else ""
    return DeploymentStatus.exited(code, reason)


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str]:
    return _run_dir(deployment).tail(tail)


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
    rd = _run_dir(deployment)
    pid = rd.pid()
    if pid is None or rd.exit_code() is not None or not _alive(agent, rd):
        _reap(agent, rd)
        return True
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if rd.exit_code() is not None or not _alive(agent, rd):
            _reap(agent, rd)
            return True
        time.sleep(0.05)
    _signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(agent, rd) and time.monotonic() < deadline:
        time.sleep(0.05)
    if rd.exit_code() is None:
        (rd.path / "exit_code").write_text(str(128 + signal.SIGKILL))
    stopped = not _alive(agent, rd)
    if stopped:
        _reap(agent, rd)
    return stopped


def _reap(agent: Any, rd: RunDir) -> None:
    """Wait for our own supervisor child, so that no zombie is left behind."""
    proc = _children(agent).pop(rd.key, None)
    if proc is not None:
        proc.wait(timeout=5)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


# --- housekeeping ---------------------------------------------------------------------------


@hookimpl
def heartbeat(agent: Any) -> None:
    """Remove run directories of finished runs that ended longer ago than ``retention_hours``.

    Only once the API says the run is final: until then the monitor may still need the exit
    code (an agent that was down, an API that was away when the workload ended).
    """
    work_dir = _work_dir(agent)
    if not work_dir.is_dir():
        return
    cutoff = time.time() - agent.backend_settings.get("retention_hours", 24.0) * 3600
    for path in work_dir.iterdir():
        try:
            finished = (path / "exit_code").stat().st_mtime
        except OSError:
            continue
        if finished >= cutoff or not _run_is_over(agent, RunDir(path)):
            continue
        _children(agent).pop(path.name, None)
        shutil.rmtree(path, ignore_errors=True)


def _run_is_over(agent: Any, rd: RunDir) -> bool:
    try:
        run = agent.client.get_flow_run(rd.run_id)
    except NotFound:
        return True
    except AgentError:
        return False  # the API is away: keep everything until it can tell
    return run["state"]["type"] in FINAL_STATES or run["attempt"] != rd.attempt
