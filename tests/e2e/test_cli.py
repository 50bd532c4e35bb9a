"""The installed ``agent`` command: plugin discovery and the embedded default (no server to start)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

AGENT_SCRIPT = Path(sys.executable).with_name("agent")


def test_plugins_list_from_the_installed_console_script_shows_the_local_backend(agent_env, tmp_path):
    assert AGENT_SCRIPT.is_file(), f"the workspace should install the `agent` console script next to {sys.executable}"

    table = subprocess.run(
        [str(AGENT_SCRIPT), "plugins", "list"], env=agent_env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    listing = subprocess.run(
        [str(AGENT_SCRIPT), "plugins", "list", "--output", "json"],
        env=agent_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert table.returncode == 0, table.stderr
    assert "local" in table.stdout
    assert "agent-plugin-local" in table.stdout
    assert listing.returncode == 0, listing.stderr
    local = next(p for p in json.loads(listing.stdout) if p["name"] == "local")
    assert local["kind"] == "backend"
    assert local["distribution"] == "agent-plugin-local"
    assert local["version"]
    assert "deploy_flow" in local["hooks"]


def test_with_no_api_configured_every_command_uses_the_embedded_database_under_agent_home(run_cli, agent_home):
    registered = run_cli("flows", "register", "hello", "--command", "echo hello from the embedded api")
    assert registered.returncode == 0, registered.stderr
    created = run_cli("runs", "create", "hello", "--output", "json")
    assert created.returncode == 0, created.stderr
    run_id = json.loads(created.stdout)["id"]

    agent = run_cli("start", "--backend", "local", "--until-idle", "--name", "embedded", timeout=60)
    shown = run_cli("runs", "show", run_id, "--output", "json")
    logs = run_cli("runs", "logs", run_id)

    assert agent.returncode == 0, agent.stdout + agent.stderr
    assert json.loads(shown.stdout)["state"]["type"] == "Success"
    assert "hello from the embedded api" in logs.stdout
    assert (agent_home / "agent.db").is_file()
