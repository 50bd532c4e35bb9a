"""Extension settings: ``[plugins.NAME]`` / ``AGENT__PLUGINS__NAME__KEY``, loaded by the extension's schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import Schema, fields

from agent_core import AgentContext, hookimpl
from agent_core.config import load_config
from agent_core.engine.settings import AgentSettings
from agent_core.errors import ConfigError, PluginError
from agent_core.plugin_settings import load_plugin_settings
from agent_core.plugins import get_plugin_manager
from tests.core.conftest import Backend, wait_until


class NotifySettings(Schema):
    url = fields.String(required=True)
    timeout = fields.Float(load_default=5.0)
    token = fields.String(load_default="")


class Notify:
    """An extension with settings, recording what ``agent.plugin_settings`` gave it at start-up."""

    name = "notify"

    def __init__(self) -> None:
        self.started_with: dict | None = None

    @hookimpl
    def plugin_settings_schema(self) -> tuple[str, Schema]:
        return ("notify", NotifySettings())

    @hookimpl
    def on_startup(self, agent: AgentContext) -> None:
        self.started_with = agent.plugin_settings("notify")


class Plain:
    """An extension without settings."""

    name = "plain"

    @hookimpl
    def heartbeat(self, agent: AgentContext) -> None:
        pass


def test_an_environment_variable_for_an_extension_is_a_setting_not_an_error(tmp_path: Path) -> None:
    config = load_config(environ={"AGENT__PLUGINS__NOTIFY__URL": "http://hooks.example"}, search=[])

    assert config.plugin_settings() == {"notify": {"url": "http://hooks.example"}}
    assert config.sources["plugins.notify.url"] == "env AGENT__PLUGINS__NOTIFY__URL"


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[plugins.notify]\nurl = "http://file.example"\ntimeout = 2\n')

    config = load_config(path, environ={"AGENT__PLUGINS__NOTIFY__URL": "http://env.example"}, search=[])

    assert config.plugin_settings() == {"notify": {"timeout": 2, "url": "http://env.example"}}


def test_a_plugins_key_without_a_plugin_name_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"extension settings are named plugins\.NAME\.KEY"):
        load_config(environ={"AGENT__PLUGINS__URL": "x"}, search=[])


def test_an_extensions_settings_are_loaded_through_its_schema_and_given_to_its_hooks(make_agent) -> None:
    ext = Notify()
    make_agent([Backend(), ext], start=True, plugin_settings={"notify": {"url": "http://h", "timeout": "1.5"}})

    wait_until(lambda: ext.started_with is not None)

    assert ext.started_with == {"url": "http://h", "timeout": 1.5, "token": ""}


def test_an_extension_without_settings_gets_an_empty_dict(make_agent) -> None:
    agent = make_agent([Backend(), Plain()])

    agent.load_backend_contract()

    assert agent.plugin_settings("plain") == {}
    with pytest.raises(KeyError):
        agent.plugin_settings("not-loaded")


@pytest.mark.parametrize(
    ("given", "key"),
    [({"url": "http://h", "timeout": "soon"}, "timeout"), ({"url": "http://h", "tiemout": 1}, "tiemout"), ({}, "url")],
    ids=["invalid", "unknown", "missing"],
)
def test_a_bad_extension_setting_is_a_start_up_error_naming_extension_and_key(make_agent, given, key) -> None:
    agent = make_agent([Backend(), Notify()], plugin_settings={"notify": given})

    with pytest.raises(ConfigError) as info:
        agent.load_backend_contract()

    message = str(info.value)
    assert "extension 'notify'" in message
    assert f"{key}:" in message
    assert "AGENT__PLUGINS__NOTIFY__KEY" in message


def test_settings_for_an_extension_that_takes_none_are_an_error(make_agent) -> None:
    agent = make_agent([Backend(), Plain()], plugin_settings={"plain": {"colour": "red"}})

    with pytest.raises(ConfigError, match=r"extension 'plain' takes no settings, but .* sets colour"):
        agent.load_backend_contract()


def test_settings_for_an_extension_that_is_not_loaded_are_an_error(make_agent) -> None:
    agent = make_agent([Backend(), Notify()], plugin_settings={"notfiy": {"url": "x"}, "notify": {"url": "x"}})

    with pytest.raises(ConfigError, match=r"no extension 'notfiy' is loaded; extensions with settings: notify"):
        agent.load_backend_contract()


def test_settings_of_a_disabled_extension_are_kept_for_later_not_an_error() -> None:
    pm = get_plugin_manager("x", load_entrypoints=False, plugins=[Backend()], disabled=["notify"])

    assert load_plugin_settings(pm, {"notify": {"url": "x"}}) == {"x": {}}


def test_two_plugins_declaring_settings_under_one_name_is_a_plugin_error(make_agent) -> None:
    class Impostor:
        name = "impostor"

        @hookimpl
        def plugin_settings_schema(self) -> tuple[str, Schema]:
            return ("notify", NotifySettings())

    agent = make_agent([Backend(), Notify(), Impostor()])

    with pytest.raises(PluginError, match="declares settings for 'notify', which another plugin declares already"):
        agent.load_backend_contract()


def test_agent_settings_from_config_carry_every_plugins_table() -> None:
    config = load_config(environ={"AGENT__PLUGINS__NOTIFY__URL": "u", "AGENT__PLUGINS__AUDIT__PATH": "p"}, search=[])

    settings = AgentSettings.from_config(config, "local")

    assert settings.plugin_settings == {"notify": {"url": "u"}, "audit": {"path": "p"}}
