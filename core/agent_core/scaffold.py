"""``agent plugins new``: the files of a new plugin distribution, ready to install and test.

A backend (``agent.backends``) runs each flow run as a local process group, keeping one run
directory per attempt (so it re-attaches after a restart and never launches an attempt twice),
and passes the conformance kit with every capability, as generated. An extension
(``agent.plugins``) records every run event to a JSON-lines file named by its own setting.
Each comes with a pyproject, a hooks module, a test module and a README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent_core import __version__

NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ScaffoldError(ValueError):
    """The plugin cannot be written (a bad name, a directory in the way)."""


@dataclass(frozen=True)
class Plugin:
    name: str
    extension: bool

    @property
    def distribution(self) -> str:
        return f"agent-plugin-{self.name.replace('_', '-')}"

    @property
    def package(self) -> str:
        return f"agent_plugin_{self.name}"

    def files(self) -> dict[str, str]:
        """Relative path -> content."""
        templates = EXTENSION_FILES if self.extension else BACKEND_FILES
        return {self._fill(path): self._fill(body).lstrip("\n") for path, body in templates.items()}

    def _fill(self, text: str) -> str:
        values = {
            "NAME": self.name,
            "DIST": self.distribution,
            "PACKAGE": self.package,
            "CLASS": "".join(part.capitalize() for part in self.name.split("_")),
            "GROUP": "agent.plugins" if self.extension else "agent.backends",
            "CORE_PIN": core_pin(__version__),
            "UPPER": self.name.upper(),
        }
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        return text


def core_pin(version: str) -> str:
    """The agent-core range a new plugin asks for: this release's minor version and what may follow
    it compatibly (up to the next major; in 0.x, where a minor release may break, the next minor)."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major + 1}" if major else f"0.{minor + 1}"
    return f"agent-core>={major}.{minor},<{upper}"


def write_plugin(name: str, target: Path, *, extension: bool = False) -> list[Path]:
    """Write the plugin ``name`` into ``target`` (created; must not exist or be empty)."""
    if not NAME.match(name):
        raise ScaffoldError(
            f"plugin name {name!r}: use lower-case letters, digits and '_', starting with a letter "
            "(it is the entry-point name, as in agent start --backend NAME, and part of a module name)"
        )
    if target.exists() and any(target.iterdir()):
        raise ScaffoldError(f"{target} exists and is not empty: choose another directory with --dir")
    written = []
    for relative, body in Plugin(name, extension).files().items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(path)
    return written


PYPROJECT = """
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "{{DIST}}"
version = "0.1.0"
description = "{{DESCRIPTION}}"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["{{CORE_PIN}}"]

[project.optional-dependencies]
test = ["agent-core[testing]"]

[project.entry-points."{{GROUP}}"]
{{NAME}} = "{{PACKAGE}}.hooks"

[tool.hatch.build.targets.wheel]
packages = ["{{PACKAGE}}"]

[tool.hatch.build]
# An editable install is a .pth file naming this folder: nothing else to install for it.
dev-mode-dirs = ["."]
"""

BACKEND_FILES: dict[str, str] = {
    "pyproject.toml": PYPROJECT.replace("{{DESCRIPTION}}", "The {{NAME}} backend for agent"),
    "README.md": """
# {{DIST}}

The `{{NAME}}` backend for agent: runs each flow run as a local process
group, with one run directory per attempt under `state_dir`.

```console
$ pip install -e '.[test]'
$ agent plugins list            # {{NAME}} backend ... ok
$ agent start --backend {{NAME}}
$ pytest                        # the conformance kit, every capability claimed
```

Settings (`[backends.{{NAME}}]`, `AGENT__BACKENDS__{{UPPER}}__KEY` or `--set KEY=VALUE`):

| key | default | what |
|---|---|---|
| `state_dir` | `$AGENT_HOME/{{NAME}}-runs` | where run directories are kept |

Replace the process launching in `{{PACKAGE}}/platform.py` with your platform's calls, and
keep `tests/test_conformance.py` passing: the probes there ask your platform directly.
""",
    "{{PACKAGE}}/__init__.py": '''
"""{{DIST}}: the {{NAME}} backend for agent (hooks in :mod:`{{PACKAGE}}.hooks`)."""
''',
    "{{PACKAGE}}/hooks.py": '''
"""The {{NAME}} backend's hooks: thin, each handing over to :mod:`{{PACKAGE}}.platform`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import Schema, fields

from agent_core import AgentContext, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.config import agent_home

from {{PACKAGE}} import platform

BACKEND = "{{NAME}}"


class Settings(Schema):
    state_dir = fields.String(load_default="")


def state_dir(agent: AgentContext) -> Path:
    configured = agent.backend_settings.get("state_dir")
    return Path(configured).expanduser() if configured else agent_home() / f"{BACKEND}-runs"


def _run_dir(deployment: Deployment) -> platform.RunDir:
    return platform.RunDir(Path(deployment.data["run_dir"]))


@hookimpl
def settings_schema() -> Schema:
    return Settings()


@hookimpl
def on_startup(agent: AgentContext) -> None:
    state_dir(agent).mkdir(parents=True, exist_ok=True)


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: dict[str, Any], agent: AgentContext) -> Deployment:
    rd = platform.RunDir.of(state_dir(agent), flow_run.id, flow_run.attempt)
    if rd.exists():
        # This attempt was launched already (a repeated call, or before a restart): not twice.
        return _deployment(rd)
    env = agent.flow_run_env(flow_run, run_config.get("env"), base=platform.base_environment(agent.api_key))
    platform.launch(rd, flow_run.command, env, run_config.get("working_dir"))
    agent.write_run_log(flow_run, f"{BACKEND}: started {flow_run.command!r} in {rd.path}")
    return _deployment(rd)


def _deployment(rd: platform.RunDir) -> Deployment:
    return Deployment(BACKEND, str(rd.pid()), f"{BACKEND} process group {rd.pid()}", {"run_dir": str(rd.path)})


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: AgentContext) -> DeploymentStatus:
    rd = _run_dir(deployment)
    if not rd.exists():
        return DeploymentStatus.missing(f"its run directory {rd.path} is gone")
    _ship(agent, flow_run, rd)
    code = rd.exit_code()
    if code is None and not platform.group_alive(rd.pid()):
        code = rd.exit_code()  # it may have finished between the two looks
        if code is None:
            return DeploymentStatus.exited(137, "the workload was killed")
    if code is None:
        return DeploymentStatus.running()
    _ship(agent, flow_run, rd)
    return DeploymentStatus.exited(code)


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: AgentContext, tail: int) -> list[str]:
    return _run_dir(deployment).tail(tail)


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: AgentContext, grace_seconds: float) -> bool:
    rd = _run_dir(deployment)
    stopped = platform.stop(rd.pid(), grace_seconds)
    # Once this returns the run is Cancelled and check_deployment is not called again for it.
    _ship(agent, flow_run, rd)
    return stopped


@hookimpl
def list_deployments(agent: AgentContext) -> list[LiveDeployment]:
    return [LiveDeployment(rd.run_id, rd.attempt, _deployment(rd)) for rd in platform.run_dirs(state_dir(agent))]


def _ship(agent: AgentContext, flow_run: FlowRun, rd: platform.RunDir) -> None:
    # Two positions: how many lines were queued (here, so each is queued once), and how many the
    # API has (the run directory's file, moved only when the agent says the API took them, so a
    # restarted agent sends again what an outage kept from the API).
    queued = agent.plugin_state(BACKEND).setdefault("queued", {})
    start = queued.get(rd.path.name, rd.shipped())
    lines = rd.lines()[start:]
    if not lines:
        return
    queued[rd.path.name] = start + len(lines)
    for line in lines[:-1]:
        agent.write_output(flow_run, line)
    agent.write_output(flow_run, lines[-1], on_shipped=lambda: rd.set_shipped(start + len(lines)))
''',
    "{{PACKAGE}}/platform.py": '''
"""The platform: process groups started from run directories ``<state_dir>/<run id>-<attempt>/``.

``pid`` is the workload's process group; ``output.log`` its output; ``shipped`` how much of it
is in the run's logs; ``exit_code`` written by the wrapper shell when the command ends.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# The wrapper records the command's exit code next to its output, so a restarted agent can read it.
WRAPPER = '"$@"; echo $? > "$0/exit_code.tmp" && mv "$0/exit_code.tmp" "$0/exit_code"'


@dataclass(frozen=True)
class RunDir:
    path: Path

    @classmethod
    def of(cls, root: Path, run_id: str, attempt: int) -> RunDir:
        return cls(root / f"{run_id}-{attempt}")

    @property
    def run_id(self) -> str:
        return self.path.name.rsplit("-", 1)[0]

    @property
    def attempt(self) -> int:
        return int(self.path.name.rsplit("-", 1)[1])

    def exists(self) -> bool:
        return self.path.is_dir()

    def pid(self) -> int:
        try:
            return int((self.path / "pid").read_text())
        except (OSError, ValueError):
            return 0

    def exit_code(self) -> int | None:
        try:
            return int((self.path / "exit_code").read_text())
        except (OSError, ValueError):
            return None

    def lines(self) -> list[str]:
        try:
            return (self.path / "output.log").read_text(errors="replace").splitlines()
        except OSError:
            return []

    def tail(self, count: int) -> list[str]:
        return self.lines()[-count:]

    def shipped(self) -> int:
        """How many lines of the output the API has (kept on disk, for restarts)."""
        try:
            return int((self.path / "shipped").read_text())
        except (OSError, ValueError):
            return 0

    def set_shipped(self, count: int) -> None:
        if count > self.shipped():
            (self.path / "shipped.tmp").write_text(str(count))
            os.replace(self.path / "shipped.tmp", self.path / "shipped")


def run_dirs(root: Path) -> list[RunDir]:
    if not root.is_dir():
        return []
    return [RunDir(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name.rpartition("-")[2].isdigit()]


def base_environment(agent_key: str) -> dict[str, str]:
    """The agent process's environment, less its own settings and key (the workload's lowest layer)."""
    from agent_core.workload import agent_process_environment

    return agent_process_environment(agent_key)


def launch(rd: RunDir, command: str, env: dict[str, str], working_dir: str | None) -> None:
    if working_dir and not Path(working_dir).is_dir():
        raise ValueError(f"working directory {working_dir!r} does not exist")
    argv = shlex.split(command)
    rd.path.mkdir(parents=True)
    with (rd.path / "output.log").open("ab") as out:
        proc = subprocess.Popen(
            ["/bin/sh", "-c", WRAPPER, str(rd.path), *argv],
            cwd=working_dir or None,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a cancel reaches the whole tree
        )
    (rd.path / "pid").write_text(str(proc.pid))


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies do not count)."""
    if pgid <= 0:
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    _reap(pgid)
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child: leave no zombie behind
    except ChildProcessError:
        pass


def stop(pgid: int, grace_seconds: float) -> bool:
    """SIGTERM the group, SIGKILL it after ``grace_seconds``; True once nothing of it runs."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        if not group_alive(pgid):
            return True
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_alive(pgid):
            time.sleep(0.05)
    return not group_alive(pgid)
''',
    "tests/test_conformance.py": '''
"""The {{NAME}} backend against agent-core's conformance kit (docs: "The conformance kit")."""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent_core import Deployment
from agent_core.testing.conformance import BackendConformance

from {{PACKAGE}} import platform


class Test{{CLASS}}Conformance(BackendConformance):
    backend = "{{NAME}}"
    capabilities = frozenset(
        {"exit_codes", "output", "cancel", "cancel_output", "reattach", "missing", "idempotent_deploy"}
    )
    not_claimed: ClassVar[dict[str, str]] = {}

    @pytest.fixture
    def backend_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {"state_dir": str(tmp_path / "runs")}

    def deploy_error_run_config(self) -> dict[str, Any]:
        return {"type": "{{NAME}}", "working_dir": "/nonexistent/conformance"}

    # The probes ask the platform (here: the process table and the run directories) directly.

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        return platform.group_alive(int(deployment.platform_id))

    def workload_count(self, flow_run_id: str, backend_settings: dict[str, Any]) -> int:
        root = Path(backend_settings["state_dir"])
        return sum(1 for rd in platform.run_dirs(root) if rd.run_id == flow_run_id)

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        os.killpg(int(deployment.platform_id), signal.SIGKILL)
        shutil.rmtree(deployment.data["run_dir"])
''',
}

EXTENSION_FILES: dict[str, str] = {
    "pyproject.toml": PYPROJECT.replace("{{DESCRIPTION}}", "The {{NAME}} extension for agent"),
    "README.md": """
# {{DIST}}

The `{{NAME}}` extension for agent: appends every run event the agent
sees (claimed, Running, final, cancelled, re-attached...) to a JSON-lines file.

```console
$ pip install -e '.[test]'
$ agent plugins list            # {{NAME}} extension ... ok
$ pytest                        # a real API server and agent, the events checked
```

Settings (`[plugins.{{NAME}}]`, `AGENT__PLUGINS__{{UPPER}}__KEY` or `--set plugins.{{NAME}}.KEY=VALUE`):

| key | default | what |
|---|---|---|
| `path` | `{{NAME}}-events.jsonl` | the file events are appended to |
""",
    "{{PACKAGE}}/__init__.py": '''
"""{{DIST}}: the {{NAME}} extension for agent (hooks in :mod:`{{PACKAGE}}.hooks`)."""
''',
    "{{PACKAGE}}/hooks.py": '''
"""The {{NAME}} extension: every run event, one JSON object per line, in ``[plugins.{{NAME}}] path``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from marshmallow import Schema, fields

from agent_core import AgentContext, Deployment, FlowRun, hookimpl
from agent_core.states import State

NAME = "{{NAME}}"
_LOCK = threading.Lock()  # one writer at a time, whichever agent of the process calls


class Settings(Schema):
    path = fields.String(load_default="{{NAME}}-events.jsonl")


@hookimpl
def plugin_settings_schema() -> tuple[str, Schema]:
    return (NAME, Settings())


@hookimpl
def on_startup(agent: AgentContext) -> None:
    path = Path(agent.plugin_settings(NAME)["path"]).resolve()
    agent.plugin_state(NAME)["path"] = path
    agent.logger.info("%s: recording run events in %s", NAME, path)


@hookimpl
def flow_run_state_changed(
    flow_run: FlowRun,
    old_state: State | None,
    new_state: State,
    message: str,
    deployment: Deployment | None,
    agent: AgentContext,
) -> None:
    # Called on the agent's run-events thread, in order per run; keep it quick.
    path = agent.plugin_state(NAME).get("path") or Path(agent.plugin_settings(NAME)["path"]).resolve()
    record = {
        "run": flow_run.id,
        "attempt": flow_run.attempt,
        "old": old_state.value if old_state else None,
        "new": new_state.value,
        "message": message,
        "agent": agent.name,
    }
    with _LOCK, path.open("a") as out:
        out.write(json.dumps(record) + "\\n")
''',
    "tests/test_events.py": '''
"""The {{NAME}} extension with a real API server and a real agent: every state change recorded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent_core import Deployment, DeploymentStatus, FlowRun, hookimpl
from agent_core.testing.harness import AgentThread, history_types, wait_for_final
from agent_core.testing.servers import APIServer

from {{PACKAGE}} import hooks


class InstantBackend:
    """A backend whose workloads finish at once, with exit code 0."""

    name = "instant"

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        return Deployment("instant", flow_run.key, "instant workload")

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
        return DeploymentStatus.exited(0)


def test_every_state_change_of_a_run_is_recorded_in_order(agent_api_server: APIServer, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    client = agent_api_server.client()
    flow = client.register_flow("{{NAME}}-test", "true")
    run = client.create_flow_run(flow_id=flow["id"])

    agent = AgentThread(
        agent_api_server.url,
        "instant",
        plugins=[InstantBackend(), hooks],
        load_entrypoints=False,
        plugin_settings={"{{NAME}}": {"path": str(events)}},
    )
    with agent:
        final = wait_for_final(client, run["id"])

    assert final["state"]["type"] == "Success"
    recorded = [json.loads(line)["new"] for line in events.read_text().splitlines()]
    assert recorded == history_types(client, run["id"])[1:]  # all but Scheduled, set by the API
''',
}
