"""agent-core: the polling engine, hook specifications, orchestration API and CLI of ``agent``.

Plugin authors need only what is exported here::

    from agent_core import AgentContext, Deployment, DeploymentStatus, hookimpl
"""

from __future__ import annotations

import pluggy

from agent_core.context import AgentContext, PluginClient
from agent_core.models import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("agent")

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
