"""agent-core: the polling engine, hook specifications, orchestration API and CLI of ``agent``.

Plugin authors need only what is exported here::

    from agent_core import AgentContext, Deployment, DeploymentStatus, hookimpl
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    import pluggy

    from agent_core.context import AgentContext, PluginClient
    from agent_core.models import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment

    hookimpl: pluggy.HookimplMarker

# Resolved on first use: `agent --help` and `agent --version` import none of them (pluggy
# alone is a good part of the CLI's start-up time).
_EXPORTS = {
    "AgentContext": "agent_core.context",
    "PluginClient": "agent_core.context",
    "CheckResult": "agent_core.models",
    "Deployment": "agent_core.models",
    "DeploymentStatus": "agent_core.models",
    "FlowRun": "agent_core.models",
    "LiveDeployment": "agent_core.models",
}


def __getattr__(name: str) -> Any:
    if name == "hookimpl":
        import pluggy

        value: Any = pluggy.HookimplMarker("agent")
    elif name in _EXPORTS:
        import importlib

        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'agent_core' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "AgentContext",
    "CheckResult",
    "Deployment",
    "DeploymentStatus",
    "FlowRun",
    "LiveDeployment",
    "PluginClient",
    "__version__",
    "hookimpl",
]
