"""The main job on the embedded default, as `make demo` runs it.

Registers two flows, creates runs (one now, one a few seconds ahead, one that fails), runs a
local agent until the work is done, and shows the runs' states and logs. Everything lives in
a fresh AGENT_HOME (./.demo), with the embedded SQLite API: nothing to start by hand.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / ".demo"
AGENT = [sys.executable, "-m", "agent_core.cli.main"]

HELLO = (
    "python3 -c \"import json, os; p = json.loads(os.environ['AGENT_FLOW_RUN_PARAMETERS']); "
    "print('hello,', p.get('who', 'world'), 'from run', os.environ['AGENT_FLOW_RUN_ID'][:8])\""
)
FAILING = "sh -c 'echo about to fail >&2; exit 3'"


def agent(*args: str, capture: bool = False) -> str:
    print(f"\n$ agent {' '.join(shlex.quote(a) for a in args)}", flush=True)
    env = {**os.environ, "AGENT_HOME": str(HOME), "COLUMNS": "160"}
    env.pop("AGENT__API__URL", None)
    result = subprocess.run([*AGENT, *args], env=env, text=True, capture_output=capture, check=False)
    if result.returncode != 0:
        if capture:
            sys.stderr.write(result.stdout + result.stderr)
        sys.exit(f"demo step failed: agent {' '.join(args)} exited {result.returncode}")
    if capture:
        return result.stdout
    return ""


def main() -> None:
    shutil.rmtree(HOME, ignore_errors=True)
    HOME.mkdir()
    print(f"Demo home: {HOME} (embedded SQLite API at {HOME / 'agent.db'})")
    agent("flows", "register", "hello", "--command", HELLO)
    agent("flows", "register", "failing", "--command", FAILING)
    agent("runs", "create", "hello", "--param", "who=operator")
    agent("runs", "create", "hello", "--param", "who=the future", "--in", "5s")
    agent("runs", "create", "failing")
    agent("runs", "list")
    agent("start", "--backend", "local", "--name", "demo-agent", "--until-idle")
    agent("runs", "list")
    runs = json.loads(agent("runs", "list", "--output", "json", capture=True))
    for run in reversed(runs):
        agent("runs", "show", run["id"])
        agent("runs", "logs", run["id"])
    states = sorted(run["state"]["type"] for run in runs)
    print(f"\nDone: {len(runs)} runs, states {states}. Try: AGENT_HOME={HOME} agent runs list")
    if states != ["Failed", "Success", "Success"]:
        sys.exit("unexpected states: the demo expects two successes and one failure")


if __name__ == "__main__":
    main()
