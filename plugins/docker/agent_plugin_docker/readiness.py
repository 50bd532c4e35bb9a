"""The docker backend's readiness checks: cheap, truthful, and never raising.

They run for ``agent doctor``, at start-up and then every ``readiness_interval`` seconds on
the agent's readiness thread (while one fails, the agent claims nothing: docs/engine.md,
"Readiness"). So they only talk to the daemon: a ping (its version is asked once, and again
after the daemon was away), and a look at whether the default image is present. Nothing is
pulled and no registry is asked.
"""

from __future__ import annotations

from typing import Any

import docker
import docker.errors

from agent_core import CheckResult
from agent_plugin_docker import daemon
from agent_plugin_docker.daemon import UNREACHABLE, DaemonUnreachable, explain
from agent_plugin_docker.images import has_image
from agent_plugin_docker.state import state_of

REACHABLE = "docker daemon reachable"
DAEMON_FIX = "start the Docker daemon, or point the agent at it: --set base_url=unix:///PATH or tcp://HOST:PORT"


def checks(agent: Any) -> list[CheckResult]:
    try:
        return _checks(agent)
    except Exception as exc:  # a check must report, never raise: readiness depends on it
        return [
            CheckResult(REACHABLE, False, f"the check itself failed: {exc.__class__.__name__}: {exc}", fix=DAEMON_FIX)
        ]


def _checks(agent: Any) -> list[CheckResult]:
    st = state_of(agent)
    url = daemon.daemon_url(agent)
    try:
        docker_client = daemon.client(agent)
        docker_client.ping()
        info = st.daemon_info or docker_client.version()
    except DaemonUnreachable as exc:
        st.daemon_info = None
        return [CheckResult(REACHABLE, False, str(exc), fix=DAEMON_FIX)]
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        st.daemon_info = None
        return [CheckResult(REACHABLE, False, str(daemon.unreachable(agent, exc)), fix=DAEMON_FIX)]
    st.daemon_info = info
    server_api = str(info.get("ApiVersion", "0"))
    api_ok = daemon.version_tuple(server_api) >= daemon.version_tuple(daemon.PROBE_API_VERSION)
    return [
        CheckResult(
            REACHABLE,
            True,
            f"{url}: Docker {info.get('Version', '?')} on {info.get('Os', '?')}/{info.get('Arch', '?')}",
        ),
        CheckResult(
            "docker API version",
            api_ok,
            f"using API {docker_client.api.api_version} (the daemon speaks {info.get('MinAPIVersion', '?')} "
            f"to {server_api}; this plugin needs {daemon.PROBE_API_VERSION} or later)",
            fix="" if api_ok else "upgrade the Docker engine",
        ),
        _image_check(agent, docker_client),
    ]


def _image_check(agent: Any, docker_client: docker.DockerClient) -> CheckResult:
    settings = agent.backend_settings
    image, policy = settings.get("image"), settings["pull_policy"]
    if not image:
        return CheckResult("default image", True, "none set: every run config must name an image")
    name = f"default image {image}"
    try:
        if has_image(docker_client, image):
            return CheckResult(name, True, "present on the Docker host")
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        detail = explain(exc) if isinstance(exc, docker.errors.DockerException) else str(exc)
        return CheckResult(name, False, f"cannot look it up: {detail}", fix=DAEMON_FIX)
    if policy == "never":
        return CheckResult(
            name,
            False,
            "not present on the Docker host and the pull policy is 'never'",
            fix=f"pull it on the Docker host (docker pull {image}), or --set pull_policy=if-not-present",
        )
    return CheckResult(name, True, f"not present yet: pulled when a run needs it (pull policy {policy})")
