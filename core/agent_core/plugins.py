"""Building the plugin manager: the one backend named by ``--backend`` plus the extensions.

``get_plugin_manager`` is the only place a :class:`pluggy.PluginManager` is made, fresh for
each agent and each test (there is no global manager). Disabled plugins are blocked before
entry points are loaded, so their import-time code never runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from agent_core import hookspecs
from agent_core.errors import PluginError, UnknownBackend

log = logging.getLogger("agent.hooks")

BACKENDS_GROUP = "agent.backends"
PLUGINS_GROUP = "agent.plugins"
DISABLE_ENV = "AGENT_DISABLE_PLUGINS"
DEBUG_ENV = "AGENT_DEBUG_HOOKS"


def entry_points(group: str) -> list[metadata.EntryPoint]:
    # One entry per name: the same distribution can be seen twice (an editable install and
    # its .egg-info), and the first is the one Python would import.
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        seen.setdefault(ep.name, ep)
    return sorted(seen.values(), key=lambda ep: ep.name)


def disabled_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> list[str]:
    value = (os.environ if environ is None else environ).get(DISABLE_ENV, "")
    return [name.strip() for name in value.split(",") if name.strip()]


def unknown_backend(name: str, installed: Iterable[str]) -> UnknownBackend:
    names = sorted(installed)
    listing = ", ".join(names) if names else "none"
    return UnknownBackend(
        f"unknown backend {name!r}; installed backends: {listing}. To add it: pip install agent-plugin-{name}"
    )


def get_plugin_manager(
    backend: str | None,
    *,
    disabled: Iterable[str] = (),
    load_entrypoints: bool = True,
    plugins: Iterable[Any] = (),
    debug_hooks: bool | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, the backend, the extensions and ``plugins``.

    :param backend: the ``agent.backends`` entry point to load (``None``: no backend, e.g.
        for ``agent plugins list``).
    :param disabled: plugin names to block (also ``AGENT_DISABLE_PLUGINS``, comma-separated).
    :param load_entrypoints: ``False`` in tests that register in-test plugins only.
    :param plugins: objects or modules to register as well (in-test plugins, a test backend).
    :raise UnknownBackend: ``backend`` is not installed (the message lists what is).
    :raise PluginError: a plugin fails to import, or implements a hook that does not exist.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = set(disabled) | set(disabled_from_env())
    if backend is not None and backend in blocked:
        raise PluginError(f"backend {backend!r} is disabled (--disable-plugin / {DISABLE_ENV}); enable it to use it")
    for name in blocked:
        pm.set_blocked(name)

    if load_entrypoints:
        if backend is not None:
            eps = {ep.name: ep for ep in entry_points(BACKENDS_GROUP)}
            if backend not in eps:
                raise unknown_backend(backend, eps)
            pm.register(_load(eps[backend]), name=backend)
        for ep in entry_points(PLUGINS_GROUP):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            pm.register(_load(ep), name=ep.name)

    for plugin in plugins:
        pm.register(plugin, name=plugin_name(plugin))

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from None

    if debug_hooks if debug_hooks is not None else os.environ.get(DEBUG_ENV, "") not in ("", "0", "false"):
        pm.trace.root.setwriter(lambda message: log.debug(message.rstrip()))
        pm.enable_tracing()
    return pm


def plugin_name(plugin: Any) -> str:
    return getattr(plugin, "name", None) or getattr(plugin, "__name__", None) or type(plugin).__name__


def _load(ep: metadata.EntryPoint) -> ModuleType:
    try:
        return ep.load()
    except Exception as exc:
        dist = ep.dist.name if ep.dist else "its distribution"
        raise PluginError(
            f"plugin {ep.name!r} ({ep.value}) failed to import: {exc.__class__.__name__}: {exc}. "
            f"Reinstall {dist} or disable it with --disable-plugin {ep.name}"
        ) from None


def implemented_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])


@dataclass
class PluginInfo:
    name: str
    kind: str  # "backend" or "extension"
    distribution: str
    version: str
    hooks: list[str] = field(default_factory=list)
    status: str = "ok"


def describe_installed(disabled: Iterable[str] = ()) -> list[PluginInfo]:
    """Every discovered backend and extension, with the hooks each implements."""
    blocked = set(disabled) | set(disabled_from_env())
    out = []
    for group, kind in ((BACKENDS_GROUP, "backend"), (PLUGINS_GROUP, "extension")):
        for ep in entry_points(group):
            info = PluginInfo(
                name=ep.name,
                kind=kind,
                distribution=ep.dist.name if ep.dist else "?",
                version=ep.dist.version if ep.dist else "?",
            )
            if ep.name in blocked:
                info.status = "disabled"
            else:
                pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
                pm.add_hookspecs(hookspecs)
                try:
                    module = _load(ep)
                    pm.register(module, name=ep.name)
                    info.hooks = implemented_hooks(pm, module)
                except (PluginError, ValueError, pluggy.PluginValidationError) as exc:
                    info.status = f"error: {exc}"
            out.append(info)
    return out
