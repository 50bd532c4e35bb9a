"""Backend settings are loaded through ``settings_schema`` at start-up; bad ones are a clear error."""

from __future__ import annotations

import pytest
from marshmallow import Schema, fields

from agent_core import hookimpl
from agent_core.config import load_config
from agent_core.engine.settings import AgentSettings
from agent_core.errors import ConfigError
from tests.core.conftest import Backend


class XSettings(Schema):
    image = fields.String(required=True)
    workers = fields.Integer(load_default=2)


class SettingsBackend(Backend):
    @hookimpl
    def settings_schema(self) -> Schema:
        return XSettings()


def test_valid_settings_are_loaded_through_the_schema(make_agent) -> None:
    agent = make_agent([SettingsBackend()], backend_settings={"image": "python:3.12"})

    agent.load_backend_contract()

    assert agent.backend_settings == {"image": "python:3.12", "workers": 2}


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"image": "python:3.12", "workers": "many"}, "workers"),
        ({"image": "python:3.12", "wrokers": 3}, "wrokers"),
        ({}, "image"),
    ],
    ids=["invalid", "unknown", "missing"],
)
def test_a_bad_setting_is_a_config_error_naming_the_key_and_how_to_set_it(make_agent, settings: dict, key: str) -> None:
    agent = make_agent([SettingsBackend()], backend_settings=settings)

    with pytest.raises(ConfigError) as info:
        agent.load_backend_contract()

    message = str(info.value)
    assert f"{key}:" in message
    assert "[backends.x]" in message
    assert "AGENT__BACKENDS__X__KEY" in message
    assert "--set KEY=VALUE" in message


def test_settings_for_a_backend_without_settings_schema_are_an_error(make_agent) -> None:
    agent = make_agent([Backend()], backend_settings={"frobnicate": "yes"})

    with pytest.raises(ConfigError, match="takes no settings, but got frobnicate"):
        agent.load_backend_contract()


def test_a_backend_without_settings_schema_and_no_settings_starts(make_agent) -> None:
    agent = make_agent([Backend()])

    agent.load_backend_contract()

    assert agent.backend_settings == {}


def test_settings_from_the_environment_reach_the_backend_through_its_schema(make_agent) -> None:
    config = load_config(None, environ={"AGENT__BACKENDS__X__IMAGE": "img", "AGENT__BACKENDS__X__WORKERS": "5"})
    settings = AgentSettings.from_config(config, "x")
    agent = make_agent([SettingsBackend()], backend_settings=settings.backend_settings)

    agent.load_backend_contract()

    assert agent.backend_settings == {"image": "img", "workers": 5}


def test_start_with_an_invalid_setting_fails_with_the_config_error(make_agent) -> None:
    agent = make_agent([SettingsBackend()], backend_settings={"image": "img", "workers": "many"})

    make_agent.start(agent).join(10)

    assert isinstance(make_agent.errors.get(agent.name), ConfigError)
