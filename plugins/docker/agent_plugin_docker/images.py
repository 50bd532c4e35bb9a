"""Images: which ones an agent may run (registry allow-list), which pull policy applies, and pulling.

The operator's controls are checked before anything touches the engine, so a refused image
is never pulled and no container is created for it: ``allowed_registries`` (an image from any
other registry fails the run, naming the registry and the list; the rule and the reference
parse are core's, ``agent_core.images``, the same as the ecs backend's) and ``pull_policy`` (a run
config may ask for fewer pulls than the agent's policy, never more: ``never`` <
``if-not-present`` < ``always``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import docker
import docker.auth
import docker.errors
import docker.utils

from agent_core.errors import DeploymentError
from agent_core.images import refused_registry
from agent_plugin_docker.daemon import daemon_errors
from agent_plugin_docker.state import state_of

PULL_POLICIES = ("never", "if-not-present", "always")  # fewest pulls first


# --- the registry allow-list (the rule is core's, shared with the ecs backend) -------------------


def check_allowed(image: str, registries: list[str]) -> None:
    """:raise DeploymentError: ``registries`` is set and ``image`` comes from none of them (or is no image name)."""
    registry = refused_registry(image, registries)
    if registry is not None:
        raise DeploymentError(
            f"image {image!r} is from registry {registry!r}, which this agent does not allow "
            f"(allowed_registries: {', '.join(registries)}); nothing was pulled or started"
        )


# --- the pull policy --------------------------------------------------------------------------


def pull_policy(asked: str | None, agent_policy: str) -> str:
    """The policy for a run: the run config's if it pulls no more than the agent's, else an error.

    :raise DeploymentError: the run config asks for more pulls than the agent allows.
    """
    if asked is None or asked == agent_policy:
        return agent_policy
    if PULL_POLICIES.index(asked) > PULL_POLICIES.index(agent_policy):
        raise DeploymentError(
            f"the run config asks for pull_policy {asked!r}, but this agent's pull policy is {agent_policy!r}: "
            f"a run may ask for fewer pulls than its agent, never more ({' < '.join(PULL_POLICIES)}); "
            "nothing was pulled or started"
        )
    return asked


# --- pulling ----------------------------------------------------------------------------------


def has_image(docker_client: docker.DockerClient, image: str) -> bool:
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def auth_config(agent: Any, repository: str) -> dict[str, str] | None:
    """The agent's registry credentials, if they are for the registry of ``repository``."""
    settings = agent.backend_settings
    if not settings.get("registry_username"):
        return None
    registry, _ = docker.auth.resolve_repository_name(repository)
    wanted = settings.get("registry") or ""
    if wanted and wanted.removeprefix("https://").rstrip("/") != registry:
        return None
    config = {"username": settings["registry_username"], "password": settings["registry_password"]}
    if wanted:
        config["serveraddress"] = wanted
    return config


def ensure_image(
    agent: Any, docker_client: docker.DockerClient, image: str, policy: str, log: Callable[[str], None]
) -> None:
    """Make ``image`` present as ``policy`` says, pulling it at most once at a time.

    Concurrent deploys of the same image wait for the one pull under way (and then use its
    result) instead of pulling again; deploys of other images are not held up.

    :param log: called with a line for the run's logs.
    :raise DeploymentError: the image is absent and may not or could not be pulled.
    """
    with daemon_errors(agent, f"cannot inspect image {image!r}"):
        if policy != "always" and has_image(docker_client, image):
            return
    if policy == "never":
        raise DeploymentError(
            f"image {image!r} is not present on the Docker host and the pull policy is 'never' "
            "(pull it there, or set pull_policy to 'if-not-present')"
        )
    st = state_of(agent)
    asked = time.monotonic()
    with st.pull_lock(image):
        if st.pulled_at.get(image, float("-inf")) >= asked:
            return  # a pull finished while we waited for the lock: fresh enough
        with daemon_errors(agent, f"cannot inspect image {image!r}"):
            if policy != "always" and has_image(docker_client, image):
                return
        repository, tag = docker.utils.parse_repository_tag(image)
        log(f"Pulling image {image} (pull policy {policy})")
        started = time.monotonic()
        with daemon_errors(agent, f"cannot pull image {image!r}"):
            docker_client.images.pull(repository, tag=tag or "latest", auth_config=auth_config(agent, repository))
        st.pulled_at[image] = time.monotonic()
        log(f"Pulled image {image} in {st.pulled_at[image] - started:.1f}s")
