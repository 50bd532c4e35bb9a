"""The docker backend's hook implementations: thin, each handing over to the module that does the work.

``containers`` launches and finds containers (``options`` says what they are created with,
``images`` which images may run and be pulled), ``status`` follows and stops them, ``output``
ships what they print, ``reaping`` removes those of finished runs, ``readiness`` checks the
daemon.
"""

from __future__ import annotations

from typing import Any

import docker.errors

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.errors import StartupError
from agent_plugin_docker import containers, daemon, output, reaping, status
from agent_plugin_docker.daemon import UNREACHABLE, DaemonUnreachable
from agent_plugin_docker.options import LABEL_ATTEMPT, LABEL_RUN, host_api_url, networks, on_bridge
from agent_plugin_docker.readiness import checks as readiness_checks
from agent_plugin_docker.schemas import DockerRunConfigSchema, DockerSettingsSchema
from agent_plugin_docker.state import BACKEND, state_dir, state_of

# --- start-up -------------------------------------------------------------------------------


@hookimpl
def settings_schema() -> DockerSettingsSchema:
    return DockerSettingsSchema()


@hookimpl
def run_config_schema() -> DockerRunConfigSchema:
    return DockerRunConfigSchema()


@hookimpl
def on_startup(agent: Any) -> None:
    directory = state_dir(agent)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the docker backend's state_dir {directory}: {exc.strerror}; "
            "choose another with --set state_dir=PATH"
        ) from None
    network_mode, _ = networks({}, agent.backend_settings)
    if on_bridge(network_mode) and (rewritten := host_api_url(agent.api_url)) is not None:
        agent.logger.warning(
            "the API is on this host's loopback (%s): containers on a bridge network get AGENT_API_URL=%s, "
            "the host's gateway, so the API server must listen there too (agent server start --host 0.0.0.0, "
            "which needs --auth), or run containers with --set network_mode=host",
            agent.api_url,
            rewritten,
        )
    # A daemon that is down now is not fatal: the agent starts, the heartbeat reports it on the
    # health endpoint, and deployments work as soon as it answers.
    try:
        daemon.client(agent)
    except DaemonUnreachable as exc:
        agent.set_problem(BACKEND, str(exc))


@hookimpl
def preflight(agent: Any) -> list[CheckResult]:
    """Cheap and never raising (see :mod:`agent_plugin_docker.readiness`): it decides readiness."""
    return readiness_checks(agent)


@hookimpl
def list_deployments(agent: Any) -> list[LiveDeployment] | None:
    try:
        found = containers.mine(agent)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException) as exc:
        # None: the core then re-attaches through the deployments recorded on the runs.
        agent.logger.warning("cannot list docker containers to re-attach: %s", exc)
        return None
    live = []
    for container in found:
        labels = containers.labels_of(container)
        try:
            attempt = int(labels.get(LABEL_ATTEMPT, ""))
        except ValueError:
            continue
        deployment = containers.deployment_of(container, container.attrs["Image"])
        live.append(LiveDeployment(labels[LABEL_RUN], attempt, deployment))
    return live


# --- deployment -----------------------------------------------------------------------------


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: dict[str, Any], agent: Any) -> Deployment:
    return containers.launch(agent, flow_run, run_config)


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
    return status.check(agent, flow_run, deployment)


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str] | None:
    return output.tail(agent, flow_run, deployment, tail)


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
    return status.stop(agent, flow_run, deployment, grace_seconds)


# --- housekeeping and shutdown --------------------------------------------------------------


@hookimpl
def heartbeat(agent: Any) -> None:
    """Report the daemon on the health endpoint, and reap containers of runs that are over."""
    if state_of(agent).closed:
        return  # a last round racing the shutdown
    try:
        daemon.client(agent).ping()
    except DaemonUnreachable as exc:
        agent.set_problem(BACKEND, str(exc))
        return
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        agent.set_problem(BACKEND, str(daemon.unreachable(agent, exc)))
        return
    agent.clear_problem(BACKEND)
    reaping.reap(agent)


@hookimpl
def on_shutdown(agent: Any) -> None:
    """Remove the containers of this agent's finished runs (the deploys are drained), then disconnect."""
    if not state_of(agent).closed:
        removed = reaping.reap(agent, min_age=0.0)
        if removed:
            agent.logger.info("Removed %d container(s) of finished runs", removed)
    daemon.close(agent)
