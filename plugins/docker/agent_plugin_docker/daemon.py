"""The connection to the Docker daemon, and its errors in words people can act on.

The client is made on first use and kept in the agent's :class:`~agent_plugin_docker.state.DockerState`,
so that an agent started while the daemon is down still starts (the heartbeat reports the
daemon on the health endpoint) and picks the daemon up once it answers.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

import docker
import docker.constants
import docker.errors
import docker.utils
import requests

from agent_core.errors import DeploymentError
from agent_plugin_docker.state import state_of

_OS_ERROR_REPR = re.compile(r"\w+Error\((\d+), '([^']*)")

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# The oldest API the SDK speaks; only used for the first request, which asks the daemon's version.
PROBE_API_VERSION = docker.constants.MINIMUM_DOCKER_API_VERSION

# Raised by requests when the daemon does not answer (refused, socket missing, timed out).
UNREACHABLE = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)


class DaemonUnreachable(DeploymentError):
    """The Docker daemon did not answer."""


def daemon_url(agent: Any) -> str:
    """The daemon's address as people write it (for messages)."""
    return agent.backend_settings.get("base_url") or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def _short(exc: BaseException) -> str:
    """The useful end of a requests/urllib3 error chain (they nest three reprs deep)."""
    text = str(exc)
    for marker in ("Caused by ", "Failed to establish a new connection: ", "Connection aborted."):
        if marker in text:
            text = text.rsplit(marker, 1)[-1]
    text = text.strip(" ()'\",:")
    # An OSError's repr (ConnectionRefusedError(111, 'Connection refused')) as the OS says it.
    if errno := _OS_ERROR_REPR.match(text):
        return f"[Errno {errno[1]}] {errno[2]}"
    return text or exc.__class__.__name__


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
    st = state_of(agent)
    found = st.client
    if found is not None:
        return found
    with st.client_lock:
        if st.closed:
            # on_shutdown ran; a hook still finishing on another thread must not reconnect.
            raise DaemonUnreachable("the docker backend has shut down")
        if st.client is None:
            try:
                st.client = _connect(agent)
            except UNREACHABLE as exc:
                raise unreachable(agent, exc) from None
            except docker.errors.DockerException as exc:
                raise DaemonUnreachable(
                    f"cannot use the Docker daemon at {daemon_url(agent)}: {explain(exc)}"
                ) from None
        return st.client


def close(agent: Any) -> None:
    st = state_of(agent)
    with st.client_lock:
        st.closed = True
        found, st.client = st.client, None
    if found is not None:
        found.close()
