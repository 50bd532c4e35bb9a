"""Where the config file is found: ./agent.toml, $AGENT_HOME/config.toml, /etc/agent/config.toml."""

from __future__ import annotations

from pathlib import Path

from agent_core.config import SYSTEM_CONFIG_FILE, config_search_path, load_config
from tests.cli.conftest import run_cli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_search_ends_with_the_machine_wide_file(home, tmp_path):
    assert config_search_path() == [tmp_path / "agent.toml", home / "config.toml", Path("/etc/agent/config.toml")]
    assert Path("/etc/agent/config.toml") == SYSTEM_CONFIG_FILE


def test_the_first_file_that_exists_wins_in_the_documented_order(tmp_path):
    cwd, home, system = tmp_path / "cwd" / "agent.toml", tmp_path / "home" / "config.toml", tmp_path / "etc.toml"
    order = [cwd, home, system]
    write(system, '[agent]\nname = "from-etc"\n')
    assert load_config(None, environ={}, search=order).get("agent.name") == "from-etc"
    write(home, '[agent]\nname = "from-home"\n')
    assert load_config(None, environ={}, search=order).get("agent.name") == "from-home"
    write(cwd, '[agent]\nname = "from-cwd"\n')
    assert load_config(None, environ={}, search=order).file == cwd


def test_config_show_names_the_file_it_read(home, capsys, tmp_path):
    write(tmp_path / "agent.toml", "[api]\nretries = 5\n")

    _, out, _ = run_cli(capsys, "config", "show")

    assert out.splitlines()[0] == f"config file: {tmp_path / 'agent.toml'}"
