"""The CLI's tests run ``agent`` in-process through ``agent_core.cli.main.main`` (the console
script's entry point), against the embedded API under a temporary ``$AGENT_HOME`` or a real
server over HTTP."""

from __future__ import annotations

import logging
import os

import pytest

from agent_core.cli.main import main
from agent_core.testing.servers import APIServer


@pytest.fixture(autouse=True)
def restore_logging():
    """Commands replace the root logger's handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty $AGENT_HOME, no config file and no API or log settings from the environment."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for name in [*(n for n in os.environ if n.startswith("AGENT__")), "AGENT_CONFIG", "NO_COLOR"]:
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def server(tmp_path):
    with APIServer(f"sqlite:///{tmp_path / 'server.db'}") as srv:
        yield srv


def run_cli(capsys, *args):
    """``agent ARGS`` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err
