"""Layered configuration: defaults < config file < environment < flags, backend settings and masking."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent_core.cli.main import app
from agent_core.config import DEFAULTS, load_config
from agent_core.engine.settings import AgentSettings
from agent_core.errors import ConfigError


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No config file but the ones a test writes, no AGENT_* variables from the outside."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("AGENT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGENT_CONFIG", raising=False)
    for name in list(os.environ):
        if name.startswith("AGENT__"):
            monkeypatch.delenv(name)
    return work


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_defaults_apply_without_file_environment_or_flags() -> None:
    config = load_config(None, environ={})

    assert config.file is None
    assert config.section("agent")["prefetch_seconds"] == 10.0
    assert config.section("agent")["heartbeat_period"] == DEFAULTS["agent"]["heartbeat_period"]
    assert config.section("api")["url"] == ""


@pytest.mark.parametrize(
    ("file", "env", "flag", "expected", "source"),
    [
        (None, None, None, 60.0, None),
        ("5", None, None, 5.0, "file"),
        ("5", "6", None, 6.0, "env AGENT__AGENT__HEARTBEAT_PERIOD"),
        ("5", "6", "7", 7.0, "flag"),
        (None, "6", "7", 7.0, "flag"),
        ("5", None, "7", 7.0, "flag"),
    ],
)
def test_later_layers_win(
    isolated: Path, file: str | None, env: str | None, flag: str | None, expected: float, source: str | None
) -> None:
    path = write(isolated / "agent.toml", f"[agent]\nheartbeat_period = {file}\n") if file else None
    environ = {"AGENT__AGENT__HEARTBEAT_PERIOD": env} if env else {}
    overrides = {"agent.heartbeat_period": flag} if flag else {}

    config = load_config(None, environ=environ, overrides=overrides)

    assert config.get("agent.heartbeat_period") == expected
    if source == "file":
        assert config.sources["agent.heartbeat_period"] == str(path)
    else:
        assert config.sources.get("agent.heartbeat_period") == source


def test_a_flag_of_none_leaves_the_lower_layers_alone(isolated: Path) -> None:
    write(isolated / "agent.toml", '[api]\nurl = "http://from-file:4200"\n')

    config = load_config(None, environ={}, overrides={"api.url": None})

    assert config.get("api.url") == "http://from-file:4200"


def test_the_config_file_is_agent_toml_else_agent_home_config_toml(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = write(tmp_path / "home" / "config.toml", '[agent]\nname = "from-home"\n')
    assert load_config(None, environ={}).get("agent.name") == "from-home"
    assert load_config(None, environ={}).file == home

    write(isolated / "agent.toml", '[agent]\nname = "from-cwd"\n')
    assert load_config(None, environ={}).get("agent.name") == "from-cwd"


def test_an_explicit_config_file_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


@pytest.mark.parametrize(
    ("where", "names"),
    [
        ("file", ["agent.nmae", "agent.toml"]),
        ("env", ["agent.nmae", "AGENT__AGENT__NMAE"]),
        ("flag", ["agent.nmae"]),
    ],
)
def test_an_unknown_key_is_an_error_naming_it(isolated: Path, where: str, names: list[str]) -> None:
    kwargs: dict[str, Any] = {"environ": {}}
    if where == "file":
        write(isolated / "agent.toml", '[agent]\nnmae = "typo"\n')
    elif where == "env":
        kwargs["environ"] = {"AGENT__AGENT__NMAE": "typo"}
    else:
        kwargs["overrides"] = {"agent.nmae": "typo"}

    with pytest.raises(ConfigError) as info:
        load_config(None, **kwargs)

    for name in names:
        assert name in str(info.value)
    assert "name" in str(info.value)  # the keys [agent] does take


def test_an_unknown_section_is_an_error_listing_the_sections() -> None:
    with pytest.raises(ConfigError, match="sections are api, agent, server, backends"):
        load_config(None, environ={"AGENT__AGNET__NAME": "typo"})


def test_a_value_of_the_wrong_type_is_an_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"agent\.heartbeat_period.*'often'"):
        load_config(None, environ={"AGENT__AGENT__HEARTBEAT_PERIOD": "often"})


def test_values_from_the_environment_take_the_type_of_the_default() -> None:
    config = load_config(
        None,
        environ={
            "AGENT__AGENT__MAX_WORKERS": "3",
            "AGENT__AGENT__LABELS": "gpu, big",
            "AGENT__AGENT__ENV": '{"A": "1"}',
            "AGENT__SERVER__AUTH": "yes",
        },
    )

    assert config.get("agent.max_workers") == 3
    assert config.get("agent.labels") == ["gpu", "big"]
    assert config.get("agent.env") == {"A": "1"}
    assert config.get("server.auth") is True


def test_a_null_in_the_agents_env_stays_none_so_that_it_removes_the_variable_from_workloads() -> None:
    config = load_config(None, environ={"AGENT__AGENT__ENV": '{"HTTP_PROXY": null, "TZ": "UTC"}'})

    assert config.get("agent.env") == {"HTTP_PROXY": None, "TZ": "UTC"}


def test_backend_settings_come_from_file_environment_and_flags(isolated: Path) -> None:
    write(
        isolated / "agent.toml",
        """
        [backends.docker]
        network = "from-file"
        image = "python:3.12"
        """,
    )

    config = load_config(
        None,
        environ={"AGENT__BACKENDS__DOCKER__NETWORK": "from-env", "AGENT__BACKENDS__ECS__CLUSTER": "c1"},
        overrides={"backends.docker.image": "python:3.13"},
    )

    assert config.backend_settings("docker") == {"network": "from-env", "image": "python:3.13"}
    assert config.backend_settings("ecs") == {"cluster": "c1"}
    assert config.backend_settings("local") == {}


def test_agent_settings_take_the_agent_section_and_the_backends_settings() -> None:
    config = load_config(
        None,
        environ={"AGENT__AGENT__NAME": "worker-1", "AGENT__BACKENDS__X__IMAGE": "img", "AGENT__API__KEY": "k"},
    )

    settings = AgentSettings.from_config(config, "x", max_polls=3)

    assert (settings.name, settings.backend, settings.max_polls) == ("worker-1", "x", 3)
    assert settings.backend_settings == {"image": "img"}
    assert settings.api_key == "k"


def test_effective_config_masks_secrets() -> None:
    config = load_config(
        None,
        environ={
            "AGENT__API__KEY": "runner-9f8e7d6c5b4a",
            "AGENT__BACKENDS__ECS__SECRET_ACCESS_KEY": "aws-abcdefghijklmnop",
            "AGENT__BACKENDS__ECS__CLUSTER": "prod",
        },
    )

    masked = config.effective()
    assert "9f8e7d6c5b4a" not in json.dumps(masked)
    assert "abcdefghijklmnop" not in json.dumps(masked)
    assert masked["backends"]["ecs"]["cluster"] == "prod"
    assert config.effective(masked=False)["api"]["key"] == "runner-9f8e7d6c5b4a"


@pytest.mark.parametrize("output", ["table", "json"])
def test_agent_config_show_prints_the_effective_config_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch, output: str
) -> None:
    monkeypatch.setenv("AGENT__API__KEY", "runner-9f8e7d6c5b4a")
    monkeypatch.setenv("AGENT__BACKENDS__DOCKER__REGISTRY_PASSWORD", "hunter2hunter2")
    monkeypatch.setenv("AGENT__AGENT__NAME", "shown-name")

    result = CliRunner().invoke(app, ["config", "show", "--output", output])

    assert result.exit_code == 0, result.output
    assert "shown-name" in result.output
    assert "9f8e7d6c5b4a" not in result.output
    assert "hunter2hunter2" not in result.output
    if output == "json":
        assert json.loads(result.output)["agent"]["name"] == "shown-name"
