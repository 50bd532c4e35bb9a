"""A run's container: launching it once per attempt, finding it again, and what it is called.

Each run attempt becomes one container named ``agent-run-<run id>-<attempt>`` and labelled
with the run, the attempt, the flow and the agent, so that a restarted agent finds it again
and a second launch of the same attempt returns the existing container. Containers are
created and started separately and never with the engine's AutoRemove, so that an exit code
is always read before the container goes (the reaper removes it once its run is final).
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from agent_core import Deployment, FlowRun
from agent_core.errors import DeploymentError
from agent_plugin_docker import daemon, images
from agent_plugin_docker.daemon import UNREACHABLE, daemon_errors, explain
from agent_plugin_docker.options import (
    LABEL_AGENT,
    LABEL_ATTEMPT,
    LABEL_BACKEND,
    LABEL_RUN,
    NAME_PREFIX,
    create_options,
    networks,
)
from agent_plugin_docker.state import BACKEND

LIVE_STATUSES = frozenset({"running", "restarting", "paused", "removing"})

# Containers come from `get` (inspected: Name, Config.Labels) or from a sparse `list`
# (Names, Labels): these read both shapes.


def labels_of(container: Container) -> dict[str, str]:
    attrs = container.attrs
    return attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}


def name_of(container: Container) -> str:
    attrs = container.attrs
    name = attrs.get("Name") or next(iter(attrs.get("Names") or []), "")
    return str(name).lstrip("/")


def key_of(container: Container) -> str:
    """``<run id>-<attempt>``: names the container's state file."""
    labels = labels_of(container)
    return f"{labels.get(LABEL_RUN, '')}-{labels.get(LABEL_ATTEMPT, '')}"


def deployment_of(container: Container, image: str, *, running: bool = False) -> Deployment:
    name = name_of(container)
    return Deployment(
        backend=BACKEND,
        platform_id=container.id or "",
        info=f"container {name} ({container.short_id}, image {image})",
        data={"name": name, "image": image, "key": key_of(container)},
        running=running,
    )


def deployment_key(deployment: Deployment) -> str:
    name = deployment.data.get("name", "")
    return deployment.data.get("key") or name.removeprefix(NAME_PREFIX) or deployment.platform_id


def mine(agent: Any) -> list[Container]:
    """This agent's containers, in every state, from one sparse list call (no inspect each)."""
    docker_client = daemon.client(agent)
    filters = {"label": [f"{LABEL_BACKEND}={BACKEND}", f"{LABEL_AGENT}={agent.name}", LABEL_RUN]}
    return docker_client.containers.list(all=True, filters=filters, sparse=True)


def get(agent: Any, deployment: Deployment) -> Container | None:
    """The deployment's container; None if it no longer exists. Raises if the daemon is down."""
    docker_client = daemon.client(agent)
    for ref in filter(None, (deployment.platform_id, deployment.data.get("name"))):
        try:
            return docker_client.containers.get(ref)
        except docker.errors.NotFound:
            continue
    return None


# --- launching --------------------------------------------------------------------------------


def launch(agent: Any, flow_run: FlowRun, run_config: dict[str, Any]) -> Deployment:
    """Create and start the run's container (once per attempt: a second launch returns the first).

    The operator's controls (allowed registries, pull policy) are checked before the engine is
    asked anything, so a refused image is never pulled and no container is made for it.
    """
    settings = agent.backend_settings
    image = run_config.get("image") or settings.get("image")
    if not image:
        raise DeploymentError(
            "no image to run: set 'image' in the run's docker run config or the agent's default (--set image=NAME)"
        )
    images.check_allowed(image, settings.get("allowed_registries") or [])
    policy = images.pull_policy(run_config.get("pull_policy"), settings["pull_policy"])
    options = create_options(flow_run, run_config, agent, image)
    name = options["name"]
    docker_client = daemon.client(agent)

    existing = _existing(agent, docker_client, flow_run, name)
    if existing is not None:
        return _relaunch(agent, flow_run, existing, image)

    images.ensure_image(agent, docker_client, image, policy, lambda line: agent.write_run_log(flow_run, line))
    try:
        container = docker_client.containers.create(**options)
    except TypeError as exc:
        # The SDK's answer to an option it does not know (from create_options).
        raise DeploymentError(f"invalid create_options: {exc}") from None
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            # Another launch of this attempt created it between our look and our create.
            existing = _existing(agent, docker_client, flow_run, name)
            if existing is not None:
                return _relaunch(agent, flow_run, existing, image)
        raise DeploymentError(f"docker could not create container {name}: {explain(exc)}") from None
    except UNREACHABLE as exc:
        raise daemon.unreachable(agent, exc) from None
    network_mode, joined = networks(run_config, settings)
    start(agent, container, networks=[] if network_mode else joined[1:])
    # Started (it may have exited already, which the monitor's first check tells).
    return deployment_of(container, image, running=True)


def _existing(agent: Any, docker_client: docker.DockerClient, flow_run: FlowRun, name: str) -> Container | None:
    """The container of this run attempt if one was created before (a repeated launch)."""
    with daemon_errors(agent, f"cannot look for container {name}"):
        try:
            container = docker_client.containers.get(name)
        except docker.errors.NotFound:
            return None
    labels = labels_of(container)
    if labels.get(LABEL_RUN) != flow_run.id or labels.get(LABEL_ATTEMPT) != str(flow_run.attempt):
        raise DeploymentError(
            f"a container named {name} exists but was not created for this run attempt; remove it (docker rm -f {name})"
        )
    return container


def _relaunch(agent: Any, flow_run: FlowRun, container: Container, image: str) -> Deployment:
    agent.write_run_log(
        flow_run,
        f"Attempt {flow_run.attempt} was already launched as container {name_of(container)} "
        f"({container.status}); not starting it twice",
    )
    if container.status == "created":
        # The earlier launch stopped between create and start (e.g. the agent was killed).
        start(agent, container, networks=[])
    return deployment_of(container, image)


def start(agent: Any, container: Container, networks: list[str]) -> None:
    """Connect the extra networks and start; on failure remove the container and raise."""
    try:
        for network in networks:
            container.client.api.connect_container_to_network(container.id, network)
        container.start()
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        # A failed start leaves a `created` container behind (e.g. a command missing in the
        # image): it would block the name and never run, so it goes.
        try:
            container.remove(force=True)
        except (*UNREACHABLE, docker.errors.DockerException):
            agent.logger.warning("could not remove container %s after its failed start", name_of(container))
        if isinstance(exc, UNREACHABLE):
            raise daemon.unreachable(agent, exc) from None
        raise DeploymentError(f"container {name_of(container)} failed to start: {explain(exc)}") from None
