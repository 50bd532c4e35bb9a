"""Calling "all"-kind hooks so that one failing plugin does not keep the others from running."""

from __future__ import annotations

import logging
from typing import Any

import pluggy

log = logging.getLogger(__name__)


def call_each(pm: pluggy.PluginManager, hook_name: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of ``hook_name``; log and skip the ones that raise."""
    results = []
    caller = getattr(pm.hook, hook_name)
    for impl in reversed(caller.get_hookimpls()):  # pluggy's own order: last registered first
        try:
            result = impl.function(*(kwargs[name] for name in impl.argnames))
        except Exception:
            log.exception("%s hook of plugin %r failed", hook_name, impl.plugin_name)
            continue
        if result is not None:
            results.append(result)
    return results
