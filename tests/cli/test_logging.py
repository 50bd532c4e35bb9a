"""Logs for machines and people: JSON lines with the run id, a level setting, colours only on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest

from tests.cli.conftest import run_cli


def agent_lines(out):
    return [line for line in out.splitlines() if line.strip()]


def test_log_format_json_writes_one_object_per_line_with_the_run_id(home, capsys):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo hello")
    run = json.loads(run_cli(capsys, "runs", "create", "etl", "-o", "json")[1])

    code, out, _ = run_cli(capsys, "--log-format", "json", "start", "--backend", "local", "--until-idle")

    entries = [json.loads(line) for line in agent_lines(out)]  # every line is JSON
    assert code == 0
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry)
        assert entry["time"].endswith("Z")
    about_the_run = [e for e in entries if run["id"] in e["message"]]
    assert about_the_run
    assert all(e["run_id"] == run["id"] for e in about_the_run)
    assert all("run_id" not in e for e in entries if run["id"] not in e["message"])  # the agent's id is not one


def test_the_log_format_is_a_setting(home, capsys, tmp_path):
    (tmp_path / "agent.toml").write_text('[agent]\nlog_format = "json"\n')

    _, out, _ = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1")

    assert all(json.loads(line)["level"] for line in agent_lines(out))


def test_the_log_level_is_a_setting_from_the_environment(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__AGENT__LOG_LEVEL", "warning")

    code, out, _ = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1")

    assert code == 0
    assert " INFO " not in out


def test_the_log_level_flag_wins_over_the_environment(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__AGENT__LOG_LEVEL", "error")

    _, out, _ = run_cli(capsys, "--log-level", "debug", "start", "--backend", "local", "--max-polls", "1")

    assert " DEBUG " in out
    assert " INFO " in out


def test_a_bad_log_level_is_one_error_naming_where_it_came_from(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__AGENT__LOG_LEVEL", "loud")

    code, out, err = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1")

    assert code == 1
    assert "Traceback" not in out + err
    assert "invalid [agent] log_level (from env AGENT__AGENT__LOG_LEVEL) 'loud'" in err
    assert "debug, info, warning, error" in err


def test_short_commands_keep_stdout_for_their_output(home, capsys):
    code, out, err = run_cli(capsys, "-v", "runs", "list", "-o", "json")

    assert code == 0
    assert json.loads(out) == []
    assert "applying migration 1" in err  # the embedded database being made, logged on stderr


EMIT = """
import logging, sys
from agent_core.cli.logging_setup import configure_logging
configure_logging("INFO", "text", sys.stdout)
log = logging.getLogger("agent.test")
log.info("all is well")
log.warning("disk almost full")
log.error("deploy failed")
"""


def on_a_terminal(env):
    """Run EMIT with its stdout on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([sys.executable, "-c", EMIT], stdout=follower, stderr=follower, env=env)
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not data:
                break
            chunks.append(data)
        proc.wait(timeout=30)
        return b"".join(chunks).decode()
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)


@pytest.fixture
def env():
    return {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")} | {"TERM": "xterm"}


def test_warnings_and_errors_stand_out_on_a_terminal(env):
    text = on_a_terminal(env)

    warning = next(line for line in text.splitlines() if "disk almost full" in line)
    error = next(line for line in text.splitlines() if "deploy failed" in line)
    info = next(line for line in text.splitlines() if "all is well" in line)
    assert "\x1b[33" in warning
    assert "\x1b[31" in error
    assert "\x1b[" not in info


def test_no_color_turns_the_colours_off(env):
    text = on_a_terminal({**env, "NO_COLOR": "1"})

    assert "disk almost full" in text
    assert "\x1b[" not in text


def test_no_colours_when_the_output_is_not_a_terminal(env):
    result = subprocess.run([sys.executable, "-c", EMIT], capture_output=True, text=True, env=env, check=True)

    assert "disk almost full" in result.stdout
    assert "\x1b[" not in result.stdout


def test_the_embedded_api_writes_no_access_log_into_the_agents_log(home, capsys):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo hello")
    run_cli(capsys, "runs", "create", "etl")

    code, out, err = run_cli(capsys, "start", "--backend", "local", "--until-idle")

    assert code == 0
    assert "finished: Success" in out + err
    assert "agent_core.server.access" not in out + err


def test_the_embedded_api_writes_its_access_log_when_the_setting_asks(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__SERVER__ACCESS_LOG", "true")
    run_cli(capsys, "flows", "register", "etl", "--command", "echo hello")
    run_cli(capsys, "runs", "create", "etl")

    code, out, err = run_cli(capsys, "start", "--backend", "local", "--until-idle")

    assert code == 0
    assert "agent_core.server.access: POST /api/queue 200" in out + err
