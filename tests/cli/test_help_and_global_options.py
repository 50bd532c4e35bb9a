"""Help shows env var names and defaults with their brackets; global options go anywhere."""

from __future__ import annotations

import json

import pytest
import typer

from agent_core.cli.argv import hoist_global_options
from agent_core.cli.main import app
from tests.cli.conftest import run_cli

ROOT = typer.main.get_command(app)


def flat(text):
    """Help text with its wrapping undone."""
    return " ".join(text.split())


def test_root_help_shows_each_global_options_env_var_and_default_with_brackets(home, capsys):
    code, out, _ = run_cli(capsys, "--help")
    out = flat(out)

    assert code == 0
    assert "[env AGENT__API__URL; config [api] url; default: the embedded SQLite API]" in out
    assert "[env AGENT__API__KEY; config [api] key; default: none]" in out
    assert "[env AGENT__SERVER__DB; config [server] db; default: sqlite:///$AGENT_HOME/agent.db]" in out
    assert "[env AGENT__AGENT__LOG_LEVEL; config [agent] log_level; default: INFO]" in out
    assert "[env AGENT_CONFIG; default: ./agent.toml, $AGENT_HOME/config.toml, /etc/agent/config.toml" in out


def test_command_help_shows_the_setting_behind_an_option(home, capsys):
    start = flat(run_cli(capsys, "start", "--help")[1])
    server = flat(run_cli(capsys, "server", "start", "--help")[1])

    assert "[env AGENT__AGENT__DRAIN_TIMEOUT; config [agent] drain_timeout; default: 30.0]" in start
    assert "[env AGENT__SERVER__PORT; config [server] port; default: 4200]" in server
    assert "[env AGENT__SERVER__AUTH; config [server] auth; default: False]" in server


def test_a_global_option_after_the_command_works_as_before_it(home, capsys, server):
    server.client().register_flow("etl", "echo etl")

    before = run_cli(capsys, "--api", server.url, "flows", "list", "-o", "json")
    after = run_cli(capsys, "flows", "list", "-o", "json", "--api", server.url)
    equals = run_cli(capsys, "flows", "list", f"--api={server.url}", "-o", "json")

    assert before[0] == after[0] == equals[0] == 0
    assert [f["name"] for f in json.loads(after[1])] == ["etl"]
    assert before[1] == after[1] == equals[1]


def test_a_global_option_between_group_and_command_works(home, capsys, server):
    server.client().register_flow("etl", "echo etl")

    code, out, _ = run_cli(capsys, "flows", "--api", server.url, "list", "-o", "json")

    assert code == 0
    assert [f["name"] for f in json.loads(out)] == ["etl"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["runs", "list", "--api", "U"], ["--api", "U", "runs", "list"]),
        (["runs", "list", "-v"], ["-v", "runs", "list"]),
        (["--key", "K", "runs", "list", "--api", "U"], ["--key", "K", "--api", "U", "runs", "list"]),
        (["runs", "list", "--log-format", "json", "-o", "x"], ["--log-format", "json", "runs", "list", "-o", "x"]),
        # A command's own option of the same name keeps it.
        (["start", "-b", "local", "--api", "U", "-v"], ["start", "-b", "local", "--api", "U", "-v"]),
        (["server", "start", "--db", "D", "--key", "K"], ["--key", "K", "server", "start", "--db", "D"]),
        # Values of the command's options are never taken for options.
        (["flows", "register", "x", "--command", "--api"], ["flows", "register", "x", "--command", "--api"]),
        (["runs", "create", "etl", "--", "--api", "U"], ["runs", "create", "etl", "--", "--api", "U"]),
    ],
)
def test_hoisting_moves_only_the_global_options_the_command_lacks(argv, expected):
    assert hoist_global_options(ROOT, argv) == expected


def test_agent_dash_v_start_is_agent_start_dash_v(home, capsys):
    first = run_cli(capsys, "-v", "start", "--backend", "local", "--max-polls", "1")
    second = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1", "-v")

    for code, out, _ in (first, second):
        assert code == 0
        assert " DEBUG " in out


def test_an_unknown_option_is_still_one_clear_error(home, capsys):
    code, out, err = run_cli(capsys, "runs", "list", "--bogus")

    assert code == 2
    assert "Traceback" not in out + err
    assert "No such option: --bogus" in err
