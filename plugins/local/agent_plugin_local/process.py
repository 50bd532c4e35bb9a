"""The supervisor processes: whether one still runs, and stopping one (cancel).

The supervisor's pid is also its process group (it starts in a session of its own), so a
signal to the group reaches the workload and whatever it started in that group.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from agent_plugin_local.rundir import RunDir
from agent_plugin_local.state import state_of

# A POSIX shell script (see its header): it starts in about a millisecond.
SUPERVISOR = Path(__file__).with_name("supervisor.sh")
# The Python supervisor of earlier versions: an agent restarted onto a newer version still
# recognises the runs an older one started.
LEGACY_SUPERVISOR = Path(__file__).with_name("supervisor.py")
KILL_WAIT_SECONDS = 5.0


def alive(agent: Any, rd: RunDir) -> bool:
    """Whether the supervisor of ``rd`` still runs (ours, or one a previous agent started)."""
    known = state_of(agent).reaper.alive(rd.key)
    if known is not None:
        return known
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
    ours = str(SUPERVISOR).encode() in cmdline or str(LEGACY_SUPERVISOR).encode() in cmdline
    return ours and str(rd.path).encode() in cmdline


def signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop(agent: Any, rd: RunDir, grace_seconds: float) -> bool:
    """SIGTERM the run's process group, SIGKILL it after ``grace_seconds``; True once it is gone."""
    pid = rd.pid()
    if pid is None or rd.exit_code() is not None or not alive(agent, rd):
        return True
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if rd.exit_code() is not None or not alive(agent, rd):
            return True
        time.sleep(0.05)
    signal_group(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while alive(agent, rd) and time.monotonic() < deadline:
        time.sleep(0.05)
    if rd.exit_code() is None:
        # The supervisor died with the workload and could not write down how it ended.
        (rd.path / "exit_code").write_text(str(128 + signal.SIGKILL))
    return not alive(agent, rd)
