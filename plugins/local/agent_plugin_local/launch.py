"""Starting a run: its command, working directory and environment, and its supervisor process."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

from agent_core import Deployment, FlowRun
from agent_core.errors import DeploymentError
from agent_core.workload import agent_process_environment, with_python_path
from agent_plugin_local.process import SUPERVISOR
from agent_plugin_local.rundir import RunDir, work_dir
from agent_plugin_local.state import BACKEND, state_of

# The supervisor's interpreter: any POSIX shell (supervisor.sh uses nothing else).
SHELL = "/bin/sh"


def deployment(rd: RunDir, pid: int | None, command: str, *, running: bool = False) -> Deployment:
    return Deployment(
        backend=BACKEND,
        platform_id=str(pid or ""),
        info=f"local process {pid} ({command})",
        data={"run_dir": str(rd.path)},
        running=running,
    )


def working_directory(run_config: dict[str, Any]) -> str | None:
    """The run config's working directory as an absolute path, or None for the agent's own."""
    configured = run_config.get("working_dir")
    if not configured:
        return None
    path = Path(configured).expanduser()
    if not path.is_dir():
        raise DeploymentError(f"working directory {configured!r} does not exist")
    return os.path.abspath(path)


def environment(agent: Any, flow_run: FlowRun, run_config: dict[str, Any], cwd: str | None) -> dict[str, str]:
    """The workload's environment (``agent_core.workload``), on top of the agent's own when inherited.

    The working directory comes first on ``PYTHONPATH``, then the ``import_paths``, then what
    ``PYTHONPATH`` held already.
    """
    settings = agent.backend_settings
    if settings.get("inherit_env", True):
        base = agent_process_environment(agent.api_key)
    else:
        base = {"PATH": os.environ.get("PATH", os.defpath)}
    env = agent.flow_run_env(flow_run, run_config.get("env"), base=base)
    imports = [os.path.abspath(Path(path).expanduser()) for path in settings.get("import_paths") or []]
    return with_python_path(env, [cwd or os.getcwd(), *imports])


def resolve_executable(program: str, path: str, cwd: str | None) -> str | None:
    if os.sep in program:
        candidate = Path(cwd or ".") / program if not os.path.isabs(program) else Path(program)
        return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None
    return shutil.which(program, path=path)


def launch(agent: Any, flow_run: FlowRun, run_config: dict[str, Any]) -> Deployment:
    """Start the run's supervisor (once per attempt: a second launch returns the first)."""
    command = run_config.get("command") or flow_run.command
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise DeploymentError(f"cannot parse the command {command!r}: {exc}") from None
    if not argv:
        raise DeploymentError("the flow's command is empty")
    cwd = working_directory(run_config)
    env = environment(agent, flow_run, run_config, cwd)
    executable = resolve_executable(argv[0], env.get("PATH", os.defpath), cwd)
    if executable is None:
        raise DeploymentError(f"executable {argv[0]!r} not found (PATH={env.get('PATH', '')})")

    # A name without a slash goes to the shell resolved, so that it never runs a builtin instead.
    program = argv[0] if os.sep in argv[0] else executable

    rd = RunDir.of(work_dir(agent), flow_run.id, flow_run.attempt)
    if not rd.create():
        agent.write_run_log(
            flow_run, f"Attempt {flow_run.attempt} was already launched in {rd.path}; not starting it twice"
        )
        return deployment(rd, rd.pid(), rd.spec().get("command", command))
    rd.write_spec({"command": command, "argv": argv, "cwd": cwd, "run_id": flow_run.id, "attempt": flow_run.attempt})
    with rd.output.open("ab") as out:
        proc = subprocess.Popen(
            [
                SHELL,
                str(SUPERVISOR),
                str(rd.path),
                *([] if "PWD" in env else ["--no-pwd"]),
                "--",
                program,
                *argv[1:],
            ],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: cancel signals reach the whole tree
        )
    rd.write_pid(proc.pid)
    state_of(agent).reaper.add(rd.key, proc)
    # Started: its supervisor runs (the workload itself may have ended already, which the
    # monitor's first check tells).
    return deployment(rd, proc.pid, command, running=True)
