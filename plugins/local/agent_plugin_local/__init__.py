"""The ``local`` backend: each flow run is a subprocess on the agent's machine.

The entry point (``local`` in ``agent.backends``) is this module; the ``@hookimpl`` functions
are in :mod:`agent_plugin_local.hooks` and imported here. Each run gets a run directory
(:mod:`~agent_plugin_local.rundir`) and a small supervisor process in a session of its own
(:mod:`~agent_plugin_local.supervisor`, started by :mod:`~agent_plugin_local.launch`), so that
the workload survives an agent restart and its exit code is never lost; supervisors are reaped
the moment they exit (:mod:`~agent_plugin_local.reaper`); output is shipped to the run's logs
from the monitor thread (:mod:`~agent_plugin_local.output`).
"""

from __future__ import annotations

from agent_plugin_local.hooks import (
    cancel_deployment,
    check_deployment,
    deploy_flow,
    deployment_logs,
    heartbeat,
    list_deployments,
    on_shutdown,
    on_startup,
    preflight,
    run_config_schema,
    settings_schema,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "cancel_deployment",
    "check_deployment",
    "deploy_flow",
    "deployment_logs",
    "heartbeat",
    "list_deployments",
    "on_shutdown",
    "on_startup",
    "preflight",
    "run_config_schema",
    "settings_schema",
]
