"""``agent version`` and ``agent doctor``: what is installed, what the API runs, and how to fix what fails."""

from __future__ import annotations

import json
import platform
import socket

from agent_core import __version__
from tests.cli.conftest import run_cli


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_version_lists_core_plugins_python_and_the_apis_version(server, capsys):
    code, out, _ = run_cli(capsys, "--api", server.url, "version", "-o", "json")

    info = json.loads(out)
    assert code == 0
    assert info["core"] == __version__
    assert platform.python_version() in info["python"]
    assert {"local", "docker"} <= {p["name"] for p in info["plugins"]}
    assert {p["distribution"] for p in info["plugins"]} >= {"agent-plugin-local", "agent-plugin-docker"}
    assert info["api"] == {"url": server.url, "name": "agent", "version": __version__, "api_version": 1}


def test_version_as_a_table_names_each_part(server, capsys):
    _, out, _ = run_cli(capsys, "--api", server.url, "version")

    assert f"agent-core {__version__}" in out
    assert "plugin     local (backend): agent-plugin-local" in out
    assert f"api        {server.url}: agent {__version__} (API version 1)" in out


def test_version_with_an_unreachable_api_still_lists_the_local_parts(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__RETRIES", "0")

    code, out, _ = run_cli(capsys, "--api", f"http://127.0.0.1:{closed_port()}", "version")

    assert code == 0
    assert f"agent-core {__version__}" in out
    assert "unreachable" in out


def test_every_failed_doctor_check_says_how_to_fix_it(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__RETRIES", "0")
    url = f"http://127.0.0.1:{closed_port()}"

    code, out, _ = run_cli(capsys, "--api", url, "doctor", "--backend", "local", "--set", "nonsense=1")

    lines = out.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith("FAIL")]
    assert code == 1
    assert len(failed) == 2  # the API and the backend's settings
    for i in failed:
        assert lines[i + 1].strip().startswith("fix: ")
    assert "agent server start" in out
    assert "--set KEY=VALUE" in out


def test_doctor_json_carries_the_fix(home, capsys):
    _, out, _ = run_cli(capsys, "doctor", "--backend", "nope", "-o", "json")

    (backend,) = [c for c in json.loads(out) if c["name"] == "backend nope"]
    assert backend["ok"] is False
    assert backend["fix"] == "pip install agent-plugin-nope"


def test_a_user_key_fails_the_role_check_with_the_command_to_fix_it(tmp_path, home, capsys):
    from agent_core.testing.servers import APIServer

    with APIServer(f"sqlite:///{tmp_path / 'auth.db'}", auth=True) as server:
        key = server.store.create_key(server.store.ensure_tenant(), "user", "people")[1]
        _, out, _ = run_cli(capsys, "--api", server.url, "--key", key, "doctor", "--backend", "local")

    assert "FAIL key may run agents: role user" in out
    assert "agent keys create --role runner" in out


def test_a_missing_agent_home_is_not_a_failure(server, capsys, home):
    assert not home.exists()

    code, out, _ = run_cli(capsys, "--api", server.url, "doctor", "--backend", "local")

    assert code == 0, out
    assert "FAIL" not in out
    assert "created at start-up" in out
