"""The ``docker`` backend: each flow run is a container on a Docker engine.

The entry point (``docker`` in ``agent.backends``) is this module; the ``@hookimpl`` functions
are in :mod:`agent_plugin_docker.hooks` and imported here. The platform logic lives in modules
named for what they hold:

- :mod:`~agent_plugin_docker.containers`: launching a run's container once per attempt, finding it again;
- :mod:`~agent_plugin_docker.options`: what a container is created with (labels, environment,
  the API URL a container can reach, networks, volumes, limits);
- :mod:`~agent_plugin_docker.images`: the registry allow-list, the pull policy, pulling;
- :mod:`~agent_plugin_docker.status` and :mod:`~agent_plugin_docker.exits`: following a
  container to its exit (OOM kills included), stopping it;
- :mod:`~agent_plugin_docker.output` and :mod:`~agent_plugin_docker.runstate`: shipping its output;
- :mod:`~agent_plugin_docker.reaping`: removing the containers of finished runs;
- :mod:`~agent_plugin_docker.readiness`: the preflight (readiness) checks;
- :mod:`~agent_plugin_docker.daemon`: the connection to the daemon and its errors;
- :mod:`~agent_plugin_docker.state`: the typed per-agent state;
- :mod:`~agent_plugin_docker.schemas`: the ``docker`` run-config type and the settings.
"""

from __future__ import annotations

from agent_plugin_docker.hooks import (
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
