"""``agent plugins new``: the written distribution installs, is listed, and passes its own tests.

The plugin is installed editable into a fresh venv that sees the dev environment through a
``.pth`` file (agent-core and its dependencies, hatchling to build with), as in
``tests/docs/test_tutorial.py``; ``--no-build-isolation`` keeps the build offline and quick.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from agent_core.scaffold import core_pin
from tests.cli.conftest import run_cli
from tests.fixtures.venvs import dev_linked_venv

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


class Venv:
    def __init__(self, path: Path) -> None:
        self.path = path
        dev_linked_venv(path, pip=False)

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def run(self, *argv: str, cwd: Path, timeout: float = 300) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT") and k != "PYTHONPATH"}
        env["AGENT_HOME"] = str(cwd / "agent-home")
        result = subprocess.run(
            [self.python, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def install(self, project: Path) -> None:
        self.run("-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(project), cwd=project)


def test_a_new_name_that_is_not_an_identifier_is_refused(tmp_path, home, capsys) -> None:
    code, _, err = run_cli(capsys, "plugins", "new", "My-Backend", "--dir", tmp_path / "x")

    assert code == 1
    assert "use lower-case letters, digits and '_'" in err


def test_new_refuses_to_write_into_a_directory_that_is_not_empty(tmp_path, home, capsys) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")

    code, _, err = run_cli(capsys, "plugins", "new", "demo", "--dir", tmp_path / "taken")

    assert code == 1
    assert "is not empty" in err


def test_the_new_plugin_pins_a_compatible_agent_core_range() -> None:
    assert core_pin("0.1.0") == "agent-core>=0.1,<0.2"
    assert core_pin("1.4.2") == "agent-core>=1.4,<2"


def test_a_new_backend_installs_is_listed_and_passes_the_conformance_kit(tmp_path, home, capsys) -> None:
    project = tmp_path / "agent-plugin-scaffolded"
    code, out, _ = run_cli(capsys, "plugins", "new", "scaffolded", "--dir", project)
    assert code == 0
    assert "tests/test_conformance.py" in out
    venv = Venv(tmp_path / "venv")
    venv.install(project)

    listed = {
        p["name"]: p
        for p in json.loads(venv.run("-m", "agent_core.cli.main", "plugins", "list", "-o", "json", cwd=tmp_path))
    }
    assert listed["scaffolded"]["kind"] == "backend"
    assert listed["scaffolded"]["distribution"] == "agent-plugin-scaffolded"
    assert listed["scaffolded"]["status"] == "ok"

    report = venv.run("-m", "pytest", "-q", "-p", "no:randomly", "-n", "2", str(project / "tests"), cwd=project)
    assert "passed" in report and "skipped" not in report and "failed" not in report, report


def test_a_new_extension_installs_is_listed_and_passes_its_test(tmp_path, home, capsys) -> None:
    project = tmp_path / "agent-plugin-recorder"
    code, _, _ = run_cli(capsys, "plugins", "new", "recorder", "--extension", "--dir", project)
    assert code == 0
    venv = Venv(tmp_path / "venv")
    venv.install(project)

    listed = {
        p["name"]: p
        for p in json.loads(venv.run("-m", "agent_core.cli.main", "plugins", "list", "-o", "json", cwd=tmp_path))
    }
    assert listed["recorder"]["kind"] == "extension"
    assert listed["recorder"]["status"] == "ok"
    assert listed["recorder"]["hooks"] == ["flow_run_state_changed", "on_startup", "plugin_settings_schema"]

    report = venv.run("-m", "pytest", "-q", "-p", "no:randomly", str(project / "tests"), cwd=project)
    assert "1 passed" in report, report
