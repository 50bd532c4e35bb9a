"""The connection to the Docker daemon, its errors, and images (pull policy, one pull per image).

The client is made on first use and kept in ``agent.plugin_state("docker")``, so that an agent
started while the daemon is down still starts (the heartbeat reports the daemon on the health
endpoint) and picks the daemon up once it answers.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import docker
import docker.auth
import docker.constants
import docker.errors
import docker.utils
import requests

from agent_core.errors import DeploymentError

BACKEND = "docker"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# The oldest API the SDK speaks; only used for the first request, which asks the daemon's version.
PROBE_API_VERSION = docker.constants.MINIMUM_DOCKER_API_VERSION

# Raised by requests when the daemon does not answer (refused, socket missing, timed out).
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


class DaemonUnreachable(DeploymentError):
    """The Docker daemon did not answer."""


def state(agent: Any) -> dict[str, Any]:
    return agent.plugin_state(BACKEND)


def daemon_url(agent: Any) -> str:
    """The daemon's address as people write it (for messages)."""
    return agent.backend_settings.get("base_url") or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def _short(exc: BaseException) -> str:
    """The useful end of a requests/urllib3 error chain (they nest three reprs deep)."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: ", "Connection aborted."):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    return text.strip(" ()'\",:") or exc.__class__.__name__


def unreachable(agent: Any, exc: BaseException) -> DaemonUnreachable:
    return DaemonUnreachable(f"the Docker daemon at {daemon_url(agent)} is unreachable: {_short(exc)}")


def explain(exc: docker.errors.DockerException) -> str:
    """The engine's own words for an API error, without the SDK's URL and status prefix."""
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        explanation = exc.explanation
        return explanation.decode(errors="replace") if isinstance(explanation, bytes) else str(explanation)
    return str(exc)


@contextlib.contextmanager
def daemon_errors(agent: Any, doing: str) -> Iterator[None]:
    """Turn SDK and transport errors into :class:`DeploymentError` naming what failed."""
    try:
        yield
    except DeploymentError:
        raise
    except UNREACHABLE as exc:
        raise unreachable(agent, exc) from None
    except docker.errors.DockerException as exc:
        raise DeploymentError(f"{doing}: {explain(exc)}") from None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"1.41"`` -> ``(1, 41)``, for comparing API versions."""
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _connect(agent: Any) -> docker.DockerClient:
    settings = agent.backend_settings
    kwargs: dict[str, Any] = (
        {"base_url": settings["base_url"]} if settings.get("base_url") else docker.utils.kwargs_from_env()
    )
    kwargs.update(timeout=settings.get("timeout", 60.0), max_pool_size=max(agent.settings.workers + 4, 10))
    version = settings.get("api_version") or "auto"
    if version == "auto":
        # The SDK's own "auto" leaks a socket whenever the daemon is down; ask by hand instead.
        probe = docker.DockerClient(version=PROBE_API_VERSION, **kwargs)
        try:
            server = probe.api.version(api_version=False)["ApiVersion"]
        finally:
            probe.close()
        version = min(server, docker.constants.DEFAULT_DOCKER_API_VERSION, key=version_tuple)
    return docker.DockerClient(version=version, **kwargs)


def client(agent: Any) -> docker.DockerClient:
    """The agent's Docker client, connecting on first use.

    :raise DaemonUnreachable: the daemon does not answer (or the URL is wrong).
    """
    st = state(agent)
    found = st.get("client")
    if found is not None:
        return found
    with st.setdefault("client_lock", threading.Lock()):
        if st.get("closed"):
            # on_shutdown ran; a hook still finishing on another thread must not reconnect.
            raise DaemonUnreachable("the docker backend has shut down")
        if st.get("client") is None:
            try:
                st["client"] = _connect(agent)
            except UNREACHABLE as exc:
                raise unreachable(agent, exc) from None
            except docker.errors.DockerException as exc:
                raise DaemonUnreachable(
                    f"cannot use the Docker daemon at {daemon_url(agent)}: {explain(exc)}"
                ) from None
        return st["client"]


def close(agent: Any) -> None:
    st = state(agent)
    with st.setdefault("client_lock", threading.Lock()):
        st["closed"] = True
        found = st.pop("client", None)
    if found is not None:
        found.close()


# --- images ---------------------------------------------------------------------------------


def has_image(docker_client: docker.DockerClient, image: str) -> bool:
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _auth_config(agent: Any, repository: str) -> dict[str, str] | None:
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


def _pull_lock(agent: Any, image: str) -> threading.Lock:
    st = state(agent)
    with st.setdefault("pull_locks_guard", threading.Lock()):
        return st.setdefault("pull_locks", {}).setdefault(image, threading.Lock())


def ensure_image(agent: Any, docker_client: docker.DockerClient, image: str, policy: str, log: Any) -> None:
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
    asked = time.monotonic()
    with _pull_lock(agent, image):
        pulled = state(agent).setdefault("pulled_at", {})
        if pulled.get(image, float("-inf")) >= asked:
            return  # a pull finished while we waited for the lock: fresh enough
        with daemon_errors(agent, f"cannot inspect image {image!r}"):
            if policy != "always" and has_image(docker_client, image):
                return
        repository, tag = docker.utils.parse_repository_tag(image)
        log(f"Pulling image {image} (pull policy {policy})")
        started = time.monotonic()
        with daemon_errors(agent, f"cannot pull image {image!r}"):
            docker_client.images.pull(repository, tag=tag or "latest", auth_config=_auth_config(agent, repository))
        pulled[image] = time.monotonic()
        log(f"Pulled image {image} in {pulled[image] - started:.1f}s")
