"""Calling "all"-kind hooks so that one failing plugin does not keep the others from running."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pluggy

log = logging.getLogger(__name__)


def call_each(
    pm: pluggy.PluginManager,
    hook_name: str,
    on_error: Callable[[str, Exception], Any] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Call every implementation of ``hook_name``; log and skip the ones that raise.

    ``on_error(plugin_name, exc)``, when given, returns what stands for a raising plugin's
    result (a failed check, for ``preflight``). Each plugin is called through a subset caller
    of the manager, so hook tracing (``AGENT_DEBUG_HOOKS``) sees these calls like any other.
    """
    results = []
    for name, caller in plugin_callers(pm, hook_name):
        try:
            results.extend(caller(**kwargs))
        except Exception as exc:
            log.exception("%s hook of plugin %r failed", hook_name, name)
            if on_error is not None:
                results.append(on_error(name, exc))
    return results


def plugin_callers(pm: pluggy.PluginManager, hook_name: str) -> list[tuple[str, Callable[..., list[Any]]]]:
    """``(plugin name, caller)`` for each implementation of ``hook_name``, in pluggy's call order:
    each caller runs that one plugin's implementation (a subset caller, seen by hook tracing)."""
    hook = getattr(pm.hook, hook_name, None)
    if hook is None:
        return []
    plugins = [impl.plugin for impl in reversed(hook.get_hookimpls())]
    return [
        (
            pm.get_name(plugin) or repr(plugin),
            pm.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not plugin]),
        )
        for plugin in plugins
    ]
