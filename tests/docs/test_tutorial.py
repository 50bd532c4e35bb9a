"""The plugin tutorial, followed for real: ``docs/writing-a-plugin.md`` written out, installed, run.

The files are the page's code blocks marked ``title="PATH"``; the commands are the ones the
page shows (each is asserted to appear on it, so page and test cannot drift apart).

Setting up the fresh environment (measured, not guessed): the dev environment is itself a
venv, and a venv made by its python with ``--system-site-packages`` sees the *base*
interpreter's site-packages, not the dev venv's, so agent-core would be missing. Instead the
fresh venv gets a ``.pth`` file running ``site.addsitedir(<the dev site-packages>)``: the
dependencies (and the workspace's editable plugins, through their own ``.pth`` files) become
importable and count as installed for pip. agent-core itself is then installed as the page
says for authors outside the repository: a wheel built from ``core/`` (``python -m build``,
here without build isolation, so offline), installed into the fresh venv, where it comes
before the dev copy on ``sys.path`` and brings its ``agent`` script. Everything
``pip install -e`` adds goes into the fresh venv only; it builds with hatchling in an isolated
build environment, as it would for a reader, so it needs the package index.

The run events the tutorial's extension records are compared with the runs' state histories
event for event (success, failure and retry, cancel, restart).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.venvs import dev_linked_venv

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "docs" / "writing-a-plugin.md"
BLOCK = re.compile(r'^```[\w-]* title="(?P<path>[^"]+)"\n(?P<body>.*?)^```\s*$', re.M | re.S)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def doc_files(text: str) -> dict[str, str]:
    return {m["path"]: m["body"] for m in BLOCK.finditer(text)}


class Tutorial:
    """The reader's shell: a fresh venv, a working directory and an ``AGENT_HOME``."""

    def __init__(self, base: Path, page: str) -> None:
        self.page = page
        self.work = base / "tutorial"
        self.venv = base / "venv"
        self.home = base / "agent-home"
        self.work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
        env.update(
            AGENT_HOME=str(self.home),
            PATH=f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', os.defpath)}",
            COLUMNS="200",
            PYTHONDONTWRITEBYTECODE="1",
        )
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        self.env = env

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def make_venv(self) -> None:
        self.purelib = dev_linked_venv(self.venv, pip=True)

    def install_core_wheel(self, dist: Path) -> Path:
        """``python -m build`` in ``core/`` (offline: no build isolation), then the wheel into the venv."""
        assert "(cd path/to/agent/core && python -m build)" in self.page
        assert "pip install 'path/to/agent/core/dist/agent_core-0.1.0-py3-none-any.whl[testing]'" in self.page
        subprocess.run(
            [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(ROOT / "core")],
            check=True,
            capture_output=True,
            timeout=300,
        )
        (wheel,) = dist.glob("agent_core-*.whl")
        # --no-deps: the dependencies (pytest for [testing] too) are the dev environment's.
        self.run([self.python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], timeout=240)
        return wheel

    def shell(self, command: str, *, timeout: float = 120) -> str:
        """Run a command exactly as the page shows it (``NAME=VALUE`` prefixes included).

        ``agent`` and ``pip`` are the fresh venv's.
        """
        assert command in self.page, f"the tutorial does not show the command {command!r}"
        words = shlex.split(command)
        env = {}
        while "=" in words[0]:
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        return self.run(self.argv(words), env=env, timeout=timeout)

    def argv(self, words: list[str]) -> list[str]:
        """``agent`` is the venv's own script (from the wheel); ``pip`` and ``pytest`` its modules."""
        if words[0] == "agent":
            return [str(self.venv / "bin" / "agent"), *words[1:]]
        if words[0] in ("pip", "pytest"):
            return [self.python, "-m", words[0], *words[1:]]
        return words

    def background(self, command: str) -> subprocess.Popen[str]:
        """A command the page says to run in another terminal (stopped with Ctrl-C: SIGINT)."""
        assert command in self.page, f"the tutorial does not show the command {command!r}"
        return subprocess.Popen(
            self.argv(shlex.split(command)),
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def shown(self, command: str, *args: str) -> str:
        """A command the page shows with a placeholder (``agent runs cancel ID``), run with ``args``."""
        assert command in self.page, f"the tutorial does not show the command {command!r}"
        words = shlex.split(command)
        return self.run(self.argv([w for w in words if not w.isupper()] + list(args)))

    def run_json(self, run_id: str) -> dict[str, Any]:
        text = self.run([*self.argv(["agent"]), "runs", "show", run_id, "--output", "json"], stdout_only=True)
        return json.loads(text)

    def wait_for(self, run_id: str, states: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run_json(run_id)
            if run["state"]["type"] in states:
                return run
            assert time.monotonic() < deadline, f"run {run_id} not in {states} after {timeout}s: {run['state']}"
            time.sleep(0.3)

    def run(
        self, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 120, stdout_only: bool = False
    ) -> str:
        result = subprocess.run(
            argv,
            cwd=self.work,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        output = result.stdout + result.stderr
        assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{output}"
        return result.stdout if stdout_only else output

    def agent_json(self, *args: str) -> list[Any]:
        """``agent ARGS --output json``: one JSON document, or (``runs logs``) one per entry."""
        text = self.run([*self.argv(["agent"]), *args, "--output", "json"], stdout_only=True)
        decoder, docs, at = json.JSONDecoder(), [], 0
        while text[at:].strip():
            doc, end = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
            docs.append(doc)
            at = end
        return docs[0] if len(docs) == 1 and isinstance(docs[0], list) else docs


def test_the_tutorial_backend_and_extension_install_and_run(tmp_path: Path) -> None:
    page = TUTORIAL.read_text()
    files = doc_files(page)
    assert set(files) == {
        "hello_flow.py",
        "agent-plugin-echo/pyproject.toml",
        "agent-plugin-echo/agent_plugin_echo/__init__.py",
        "agent-plugin-echo/tests/test_conformance.py",
        "agent-plugin-pulse/pyproject.toml",
        "agent-plugin-pulse/agent_plugin_pulse/__init__.py",
    }
    t = Tutorial(tmp_path, page)
    for name, body in files.items():
        path = t.work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    t.make_venv()
    t.install_core_wheel(tmp_path / "dist")
    where = t.run([t.python, "-c", "import agent_core; print(agent_core.__file__)"], stdout_only=True)
    assert where.startswith(str(t.venv)), f"agent-core is not the wheel's: {where}"
    assert t.shell("agent --version").strip() == "agent 0.1.0"

    # Part 1: the backend.
    t.shell("pip install -e ./agent-plugin-echo", timeout=240)
    assert list(t.venv.glob("lib/python*/site-packages/agent_plugin_echo-0.1.0.dist-info"))
    with pytest.raises(metadata.PackageNotFoundError):
        metadata.distribution("agent-plugin-echo")  # the dev environment is left alone
    listing = t.shell("agent plugins list")
    assert re.search(
        r"^echo +backend +agent-plugin-echo +0\.1\.0 +ok +check_deployment, deploy_flow, deployment_logs *$",
        listing,
        re.M,
    )
    plugins = {p["name"]: p for p in t.agent_json("plugins", "list")}
    assert plugins["echo"]["hooks"] == ["check_deployment", "deploy_flow", "deployment_logs"]
    assert plugins["local"]["status"] == "ok"  # the workspace's own backend is still found

    t.shell('agent flows register hello --command "python3 hello_flow.py"')
    t.shell("agent runs create hello --param who=tutorial")
    out = t.shell("agent start --backend echo --until-idle")
    assert "No work left: stopping (--until-idle)" in out

    (run,) = t.agent_json("runs", "list")
    assert run["state"]["type"] == "Success", run["state"]
    logs = [entry["message"] for entry in t.agent_json("runs", "logs", run["id"])]
    assert f"hello tutorial from run {run['id']}" in logs
    assert "echo: started 'python3 hello_flow.py'" in logs
    assert any(line.startswith("Submitted for execution: echo process ") for line in logs)
    assert (t.work / "hello.marker").read_text() == run["id"]

    # Part 1's test: the conformance kit, with the capabilities the page declares.
    report = t.shell("pytest agent-plugin-echo", timeout=600)
    assert re.search(r"\b\d+ passed, 3 skipped\b", report), report
    assert "failed" not in report and "error" not in report.lower().replace("deploy_error", ""), report
    assert "'reattach' not claimed by backend 'echo': echo keeps its processes" in report

    # Part 2: the extension, loaded next to the backend.
    t.shell("pip install -e ./agent-plugin-pulse", timeout=240)
    listing = t.shell("agent plugins list")
    assert re.search(
        r"^pulse +extension +agent-plugin-pulse +0\.1\.0 +ok +flow_run_state_changed, heartbeat, on_shutdown, "
        r"on_startup, plugin_settings_schema *$",
        listing,
        re.M,
    )

    t.shell("agent runs create hello --param who=again")
    out = t.shell("agent start --backend echo --until-idle")
    pulse_file = t.work / "agent-pulse.json"
    assert f"pulse: writing the agent's pulse to {pulse_file}" in out
    pulse = json.loads(pulse_file.read_text())
    assert pulse["status"] == "stopped"
    assert pulse["beats"] >= 1
    assert pulse["backend"] == "echo"
    runs = t.agent_json("runs", "list")
    assert [r["state"]["type"] for r in runs] == ["Success", "Success"]
    assert pulse["agent_id"] == runs[0]["agent_id"] == runs[1]["agent_id"]  # one agent id per name
    watched = [runs[0]["id"]]  # the run made with pulse loaded (newest first)

    # Run events: a failure and its retry, a cancel, a restart.
    t.shell("agent flows register failing --command \"python3 -c 'raise SystemExit(3)'\"")
    failing = json.loads(
        t.run([*t.argv(["agent"]), "runs", "create", "failing", "--retries", "1", "-o", "json"], stdout_only=True)
    )
    assert "agent runs create failing --retries 1" in page
    t.shell("agent start --backend echo --until-idle")
    assert t.run_json(failing["id"])["attempt"] == 2
    watched.append(failing["id"])

    t.shell('agent flows register slow --command "sleep 20"')
    cancelled = json.loads(t.run([*t.argv(["agent"]), "runs", "create", "slow", "-o", "json"], stdout_only=True))
    agent = t.background("agent start --backend echo")
    leftovers = []
    try:
        running = t.wait_for(cancelled["id"], {"Running"})
        leftovers.append(int(running["deployment"]["platform_id"]))
        t.shown("agent runs cancel ID", cancelled["id"])
        t.wait_for(cancelled["id"], {"Cancelled"})
        restarted = json.loads(t.run([*t.argv(["agent"]), "runs", "create", "slow", "-o", "json"], stdout_only=True))
        running = t.wait_for(restarted["id"], {"Running"})
        leftovers.append(int(running["deployment"]["platform_id"]))
    finally:
        agent.send_signal(signal.SIGINT)  # Ctrl-C: the workload is left running
        agent.communicate(timeout=60)
    try:
        t.shell("agent start --backend echo --until-idle")
    finally:
        for pid in leftovers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    watched += [cancelled["id"], restarted["id"]]

    events = [json.loads(line) for line in (t.work / "agent-events.jsonl").read_text().splitlines()]
    assert {e["run"] for e in events} == set(watched)
    outcomes = {}
    for run_id in watched:
        history = [entry["type"] for entry in t.run_json(run_id)["states"]]
        outcomes[run_id] = history[-1]
        # Every change the agent made, in order: the history less what the API or a user set.
        expected = [(old, new) for old, new in itertools.pairwise(history) if new not in ("Scheduled", "Cancelling")]
        mine = [e for e in events if e["run"] == run_id]
        assert [(e["old"], e["new"]) for e in mine if e["message"] != "re-attached"] == expected, (run_id, history)
        reattached = [(e["old"], e["new"]) for e in mine if e["message"] == "re-attached"]
        assert reattached == ([("Running", "Running")] if run_id == restarted["id"] else [])
    assert [outcomes[r] for r in watched] == ["Success", "Failed", "Cancelled", "Failed"]
    failed_events = [e for e in events if e["run"] == failing["id"] and e["new"] == "Failed"]
    assert [e["attempt"] for e in failed_events] == [1, 2]
    assert [e["message"] for e in events if e["run"] == restarted["id"]][-1].startswith("The workload disappeared")

    # Turning the extension off: listed as disabled, and its hooks do not run.
    listing = t.shell("AGENT_DISABLE_PLUGINS=pulse agent plugins list")
    assert re.search(r"^pulse +extension +agent-plugin-pulse +0\.1\.0 +disabled", listing, re.M)
    pulse_file.unlink()
    t.shell("agent runs create hello --param who=tutorial")
    out = t.shell("agent start --backend echo --until-idle --disable-plugin pulse")
    assert "pulse:" not in out
    assert not pulse_file.exists()

    # Watching the hooks.
    t.shell("agent runs create hello --param who=tutorial")
    out = t.shell("AGENT_DEBUG_HOOKS=1 agent start --backend echo --until-idle -v")
    assert re.search(r"agent\.hooks: +finish deploy_flow --> echo process \d+ \[hook\]", out)
    assert "finish check_deployment --> DeploymentStatus(kind='exited', exit_code=0" in out
    hello = [r["state"]["type"] for r in t.agent_json("runs", "list") if r["flow"]["name"] == "hello"]
    assert hello == ["Success"] * 4
