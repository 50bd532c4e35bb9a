"""Refusing a bad run config when it is given (``flows register`` / ``runs create``), not when a run fails.

Where the schema is known, that is where the type's backend is installed on this machine, the
run config is loaded through that backend's ``run_config_schema`` exactly as an agent would
(unknown fields and bad values refused, naming the field). A type no backend installed here
accepts is refused unless an agent of that backend is registered with the API (people often
create runs from a machine that has only some of the plugins): then it is accepted with a note
that it was not checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from agent_core.cli.output import print_note

if TYPE_CHECKING:
    from agent_core.client import APIClient


def _core_keys() -> tuple[str, ...]:
    """CONTRACTS.md 6: the keys every run-config type accepts, handled by core."""
    try:
        from agent_core.runconfig import CORE_RUN_CONFIG_KEYS
    except ImportError:  # before the workload stream's runconfig lands
        return ("timeout_seconds", "ship_output")
    return tuple(CORE_RUN_CONFIG_KEYS)


UNIVERSAL_FIELDS = ("env", "labels")


def _fail(option: str, message: str) -> typer.BadParameter:
    return typer.BadParameter(message, param_hint=option)


def _check_core_keys(run_config: dict[str, Any], option: str) -> None:
    timeout = run_config.get("timeout_seconds")
    bad_number = isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    if timeout is not None and bad_number:
        raise _fail(option, f"timeout_seconds must be a positive number of seconds, got {timeout!r}")
    if "ship_output" in run_config and not isinstance(run_config["ship_output"], bool):
        raise _fail(option, f"ship_output must be true or false, got {run_config['ship_output']!r}")


def check_run_config(run_config: dict[str, Any] | None, option: str, client: APIClient) -> None:
    """Raise a ``typer.BadParameter`` naming the problem if no backend could accept ``run_config``."""
    if run_config is None:
        return
    from agent_core.plugins import BACKENDS_GROUP, entry_points

    installed = {ep.name: ep for ep in entry_points(BACKENDS_GROUP)}
    kinds = ", ".join(sorted(installed)) or "none"
    kind = run_config.get("type")
    if not isinstance(kind, str) or not kind:
        raise _fail(option, f'needs a "type": "universal" or a backend\'s type (installed here: {kinds})')
    _check_core_keys(run_config, option)
    core_keys = _core_keys()
    rest = {key: value for key, value in run_config.items() if key not in core_keys}
    if kind == "universal":
        unknown = sorted(set(rest) - {"type", *UNIVERSAL_FIELDS})
        if unknown:
            takes = ", ".join([*UNIVERSAL_FIELDS, *core_keys])
            raise _fail(option, f"unknown field(s) {', '.join(unknown)} in a universal run config; it takes {takes}")
        return
    if kind in installed:
        _check_with_backend(rest, kind, installed[kind], option)
        return
    registered = sorted({agent["backend"] for agent in client.list_agents()})
    if kind in registered:
        print_note(f"note: run config of type {kind!r} not checked: no {kind!r} backend is installed here")
        return
    raise _fail(
        option,
        f"no backend accepts run configs of type {kind!r}: installed here: {kinds}; "
        f"backends of the agents registered with the API: {', '.join(registered) or 'none'}. "
        f"Use one of those or 'universal', or pip install agent-plugin-{kind}",
    )


def _check_with_backend(run_config: dict[str, Any], kind: str, entry_point: Any, option: str) -> None:
    from agent_core.errors import PluginError, RunConfigMismatch
    from agent_core.plugins import get_plugin_manager
    from agent_core.runconfig import resolve_run_config

    try:
        module = entry_point.load()
    except Exception as exc:
        raise PluginError(f"cannot check the run config: the {kind!r} backend fails to import: {exc}") from None
    # Only the backend: extensions play no part in a run config's schema.
    pm = get_plugin_manager(None, load_entrypoints=False, plugins=[module])
    schema = pm.hook.run_config_schema()
    if schema is None:
        return
    try:
        resolve_run_config(run_config, kind, schema)
    except RunConfigMismatch as exc:
        raise _fail(option, str(exc)) from None
