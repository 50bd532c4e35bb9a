"""Building the plugin manager: the one backend named by ``--backend`` plus the extensions.

``get_plugin_manager`` is the only place a :class:`pluggy.PluginManager` is made, fresh for
each agent and each test (there is no global manager). Disabled plugins are blocked before
entry points are loaded, so their import-time code never runs.
"""

from __future__ import annotations

import difflib
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

#: hooks only the backend may implement: each is ``firstresult``, so an extension implementing
#: one would silently take it over from the backend
BACKEND_ONLY_HOOKS = frozenset(
    {
        "deploy_flow",
        "check_deployment",
        "cancel_deployment",
        "deployment_logs",
        "list_deployments",
        "settings_schema",
        "run_config_schema",
    }
)


@dataclass(frozen=True)
class ContractProblem:
    """A way a plugin breaks the hook contract: an ``error`` stops the agent, a ``warning`` is logged."""

    plugin: str
    hook: str
    message: str
    severity: str = "error"  # or "warning"

    def __str__(self) -> str:
        return f"plugin {self.plugin!r}, hook {self.hook!r}: {self.message}"


def contract_problems(pm: pluggy.PluginManager, plugin: Any, kind: str | None) -> list[ContractProblem]:
    """How ``plugin`` (registered on ``pm``) breaks the contract for its ``kind``.

    :param kind: ``"backend"``, ``"extension"``, or ``None`` when unknown (an in-test plugin:
        only its hook names are checked).
    """
    name = pm.get_name(plugin) or plugin_name(plugin)
    problems = []
    hooks = set()
    for caller in pm.get_hookcallers(plugin) or []:
        impls = [impl for impl in caller.get_hookimpls() if impl.plugin is plugin]
        if not caller.has_spec() and not any(impl.optionalhook for impl in impls):
            close = difflib.get_close_matches(caller.name, _spec_names(pm), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see docs/hooks.md for the hooks there are"
            problems.append(ContractProblem(name, caller.name, f"no such hook{hint}"))
            continue
        hooks.add(caller.name)
    if kind == "extension":
        for hook in sorted(hooks & BACKEND_ONLY_HOOKS):
            problems.append(
                ContractProblem(
                    name,
                    hook,
                    "an extension (agent.plugins) implements a backend-only hook, which would take it over "
                    "from the backend; move it to a backend (agent.backends) or remove it",
                )
            )
    if kind == "backend":
        if "deploy_flow" not in hooks:
            problems.append(ContractProblem(name, "deploy_flow", "a backend must implement deploy_flow to deploy runs"))
        elif "check_deployment" not in hooks:
            problems.append(
                ContractProblem(
                    name,
                    "check_deployment",
                    "not implemented: the agent cannot see runs finish, so final states are left to the workload",
                    "warning",
                )
            )
    return problems


def _spec_names(pm: pluggy.PluginManager) -> list[str]:
    return [name for name in dir(hookspecs) if pm.parse_hookspec_opts(hookspecs, name) is not None]


def raise_contract_errors(problems: Iterable[ContractProblem]) -> None:
    """Log the warnings; raise one :class:`PluginError` naming every error."""
    errors = []
    for problem in problems:
        if problem.severity == "warning":
            log.warning("%s", problem)
        else:
            errors.append(str(problem))
    if errors:
        raise PluginError("plugin contract broken: " + "; ".join(errors))


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
    extensions: Iterable[Any] = (),
    debug_hooks: bool | None = None,
) -> pluggy.PluginManager:
    """A fresh manager with the hookspecs, the backend, the extensions and ``plugins``.

    :param backend: the ``agent.backends`` entry point to load (``None``: no backend, e.g.
        for ``agent plugins list``).
    :param disabled: plugin names to block (also ``AGENT_DISABLE_PLUGINS``, comma-separated).
    :param load_entrypoints: ``False`` in tests that register in-test plugins only.
    :param plugins: objects or modules to register as well (in-test plugins, a test backend);
        only their hook names are checked.
    :param extensions: objects or modules to register and check as extensions (in tests).
    :raise UnknownBackend: ``backend`` is not installed (the message lists what is).
    :raise PluginError: a plugin fails to import or breaks the hook contract
        (:func:`contract_problems`: a hook that does not exist, an extension implementing a
        backend-only hook, a backend without ``deploy_flow``); warnings are logged.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    blocked = set(disabled) | set(disabled_from_env())
    if backend is not None and backend in blocked:
        raise PluginError(f"backend {backend!r} is disabled (--disable-plugin / {DISABLE_ENV}); enable it to use it")
    for name in blocked:
        pm.set_blocked(name)

    kinds: dict[str, str | None] = {}
    if load_entrypoints:
        if backend is not None:
            eps = {ep.name: ep for ep in entry_points(BACKENDS_GROUP)}
            if backend not in eps:
                raise unknown_backend(backend, eps)
            _register(pm, _load(eps[backend]), backend)
            kinds[backend] = "backend"
        for ep in entry_points(PLUGINS_GROUP):
            if pm.is_blocked(ep.name) or pm.has_plugin(ep.name):
                continue
            _register(pm, _load(ep), ep.name)
            kinds[ep.name] = "extension"

    for plugin in plugins:
        _register(pm, plugin, plugin_name(plugin))
    for plugin in extensions:
        _register(pm, plugin, plugin_name(plugin))
        kinds[plugin_name(plugin)] = "extension"

    problems = []
    for plugin in pm.get_plugins():
        registered = pm.get_name(plugin) or plugin_name(plugin)
        problems += contract_problems(pm, plugin, kinds.get(registered))
    raise_contract_errors(problems)
    try:
        pm.check_pending()  # the catch-all behind contract_problems
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from None

    if debug_hooks if debug_hooks is not None else os.environ.get(DEBUG_ENV, "") not in ("", "0", "false"):
        pm.trace.root.setwriter(lambda message: log.debug(message.rstrip()))
        pm.enable_tracing()
    return pm


def _register(pm: pluggy.PluginManager, plugin: Any, name: str) -> None:
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        # A hookimpl whose arguments the spec does not have, a historic hook called wrongly...
        raise PluginError(f"plugin {name!r} breaks the hook contract: {exc}") from None


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
                    problems = contract_problems(pm, module, kind)
                except (PluginError, ValueError, pluggy.PluginValidationError) as exc:
                    info.status = f"error: {exc}"
                else:
                    info.status = _status(problems)
            out.append(info)
    return out


def _status(problems: list[ContractProblem]) -> str:
    """``ok``, or the problems, errors first: ``error: hook 'x': ...; warning: ...``."""
    if not problems:
        return "ok"
    ordered = sorted(problems, key=lambda p: p.severity != "error")
    return "; ".join(f"{p.severity}: hook {p.hook!r}: {p.message}" for p in ordered)
