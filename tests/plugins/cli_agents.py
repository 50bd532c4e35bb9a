"""``agent start --backend NAME`` as a real process, for the backends' tests that need one
(killed with SIGKILL, restarted, or with an environment of its own)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent_core.testing.servers import APIServer

AGENT_START = [sys.executable, "-m", "agent_core.cli.main", "start"]


def start_cli_agent(
    processes: list[subprocess.Popen[bytes]],
    backend: str,
    server: APIServer,
    settings: Mapping[str, Any],
    home: Path,
    log: Path,
    *extra: str,
    name: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start an agent process with ``--set`` for each of ``settings``, its output appended to ``log``.

    The test's own ``AGENT*`` variables are not passed on (the process reads only what is given
    here); ``env`` adds to or replaces the rest. The process is appended to ``processes``, the
    fixture that kills what is still alive at the end.
    """
    command = [*AGENT_START, "--backend", backend, "--api", server.url, "--name", name, *extra]
    for key, value in settings.items():
        if isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        command += ["--set", f"{key}={value}"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    environ.update(
        AGENT_HOME=str(home),
        PYTHONUNBUFFERED="1",
        AGENT__AGENT__MONITOR_INTERVAL="0.2",
        AGENT__AGENT__HEARTBEAT_PERIOD="1",
    )
    environ.update(env or {})
    with log.open("ab") as out:
        proc = subprocess.Popen(command, env=environ, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    processes.append(proc)
    return proc
