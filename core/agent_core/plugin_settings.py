"""Extension settings: ``[plugins.NAME]`` tables loaded through each extension's own schema.

An extension declares its settings with the ``plugin_settings_schema`` hook, returning
``(name, marshmallow schema)``; the agent loads the raw table of each extension through it at
start-up (``agent doctor`` does the same) and hands the result out as
``agent.plugin_settings(name)``. Whatever the configuration holds for an extension that is not
loaded, or that declares no settings, is an error: a misspelt section must not be ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pluggy
from marshmallow import Schema, ValidationError

from agent_core.errors import ConfigError, PluginError, describe_problems, schema_names


def declared_schemas(pm: pluggy.PluginManager) -> dict[str, Schema]:
    """Each plugin's settings schema by the name it declares (one plugin per name)."""
    schemas: dict[str, Schema] = {}
    for impl in pm.hook.plugin_settings_schema.get_hookimpls():
        # Called plugin by plugin (not through the hook) to know whose answer each one is.
        answer = impl.function()
        if answer is None:
            continue
        if not (isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[1], Schema)):
            raise PluginError(
                f"plugin {impl.plugin_name!r}: plugin_settings_schema must return (name, marshmallow Schema "
                f"instance) or None, not {answer!r}"
            )
        name, schema = answer
        if name in schemas:
            raise PluginError(
                f"plugin {impl.plugin_name!r}: plugin_settings_schema declares settings for {name!r}, "
                "which another plugin declares already; each extension declares its own name"
            )
        schemas[name] = schema
    return schemas


def load_plugin_settings(pm: pluggy.PluginManager, raw: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The loaded settings of every registered plugin (``{}`` for one without settings).

    :param raw: the ``[plugins]`` tables of the configuration (:meth:`Config.plugin_settings`).
    :raise ConfigError: settings for an unknown or disabled-but-named extension, for one that
        takes none, or that its schema refuses; the message names the extension and the key.
    :raise PluginError: a ``plugin_settings_schema`` answer that is not ``(name, Schema)``, or a
        name two plugins declare.
    """
    schemas = declared_schemas(pm)
    loaded: dict[str, dict[str, Any]] = {}
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin)
        if name is not None:
            loaded[name] = {}
    for name, table in sorted(raw.items()):
        if name in schemas:
            continue
        if pm.is_blocked(name):
            continue  # a disabled extension's settings wait for it to be enabled again
        if name in loaded:
            raise ConfigError(
                f"extension {name!r} takes no settings, but [plugins.{name}] sets {', '.join(sorted(table))}"
            )
        known = ", ".join(sorted(schemas)) or "none"
        raise ConfigError(
            f"[plugins.{name}] (or AGENT__PLUGINS__{name.upper()}__*): no extension {name!r} is loaded; "
            f"extensions with settings: {known} (see agent plugins list)"
        )
    for name, schema in schemas.items():
        try:
            values = schema.load(dict(raw.get(name, {})))
        except ValidationError as exc:
            problems = describe_problems(exc.normalized_messages(), schema_names(schema))
            raise ConfigError(
                f"invalid settings for extension {name!r}: {problems} "
                f"(set them in [plugins.{name}], AGENT__PLUGINS__{name.upper()}__KEY "
                f"or --set plugins.{name}.KEY=VALUE)"
            ) from None
        loaded[name] = dict(values)
    return loaded
