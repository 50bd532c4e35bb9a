"""``docs/operations.md``, followed for real: every ``console`` block runs here, unless marked.

A block is skipped only when the line before it is ``<!-- not run here: REASON -->``; the
others run as one bash script each, in a scratch directory with a fresh ``$AGENT_HOME`` and the
workspace's ``agent`` first on ``PATH``. Two differences from a reader at a terminal: the
block's ``PORT=4200`` (and an agent's ``HEALTH_PORT=8080``) becomes a free port, and
``AGENT__API__RETRIES=20`` lets the commands after ``agent server start ... &`` wait for it to
listen (a reader waits for its first line).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "operations.md"
BLOCK = re.compile(r"(?:^<!-- not run here: (?P<why>.*?) -->\n)?^```console\n(?P<body>.*?)^```\s*$", re.M | re.S)
MIN_RUNNABLE = 5

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def blocks() -> list[tuple[int, str | None, list[str]]]:
    out = []
    for match in BLOCK.finditer(PAGE.read_text()):
        line = PAGE.read_text()[: match.start("body")].count("\n") + 1
        commands = [row[2:] for row in match["body"].splitlines() if row.startswith("$ ")]
        out.append((line, match["why"], commands))
    return out


RUNNABLE = [(line, commands) for line, why, commands in blocks() if why is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_block_runs_here_or_says_why_not():
    found = blocks()

    assert all(commands for _, _, commands in found), "a console block without a $ command"
    assert all(why is None or why.strip() for _, why, _ in found)
    assert len(RUNNABLE) >= MIN_RUNNABLE


@pytest.mark.parametrize(("line", "commands"), RUNNABLE, ids=[f"line {line}" for line, _ in RUNNABLE])
def test_the_block_runs(tmp_path, line, commands):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    ports = {"PORT=4200": "PORT", "HEALTH_PORT=8080": "HEALTH_PORT"}
    lines = [f"{ports[c.strip()]}={free_port()}" if c.strip() in ports else c for c in commands]
    script = "\n".join(
        [
            "set -euo pipefail",
            # Background servers get SIGTERM (their graceful stop) when the block ends.
            'cleanup() { for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done; wait || true; }',
            "trap cleanup EXIT",
            *lines,
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT") and k != "VIRTUAL_ENV"}
    env.update(
        AGENT_HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', os.defpath)}",
        AGENT__API__RETRIES="20",
        COLUMNS="200",
        NO_COLOR="1",
    )

    result = subprocess.run(
        ["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=240, check=False
    )

    shown = f"block at line {line}:\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    assert result.returncode == 0, shown
    assert "Traceback" not in result.stdout + result.stderr
