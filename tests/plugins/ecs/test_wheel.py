"""The plugin as users install it: a wheel built from plugins/ecs, beside an agent-core wheel, in a fresh venv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def run(*command: str | Path, cwd: Path = ROOT) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_the_ecs_wheel_installs_beside_agent_core_and_is_listed(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    for project in ("core", "plugins/ecs"):
        # Without isolation: the build backend (hatchling) comes from the dev tools, no download.
        run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels, ROOT / project)
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [name.split("-")[0] for name in built] == ["agent_core", "agent_plugin_ecs"]
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    # The dev tools' pip installs into the fresh venv (--python): no pip bootstrap; no byte-compiling.
    run(
        sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile",
        "-c", ROOT / "requirements.lock", *sorted(wheels.glob("*.whl")),
    )  # fmt: skip
    listing = run(venv / "bin" / "agent", "plugins", "list", "--output", "json")
    assert '"name": "ecs"' in listing and '"distribution": "agent-plugin-ecs"' in listing
    # The installed package is the wheel's, not the workspace's.
    where = run(python, "-c", "import agent_plugin_ecs.hooks as h; print(h.__file__)")
    assert str(venv) in where
