"""What a run's container is created with: name, labels, environment, network, volumes, limits.

The environment is the workload contract's (``agent.flow_run_env``, written once in core);
this module only places it, with one docker-specific step: on a bridge network a container's
``127.0.0.1`` is itself, so an API URL on the agent host's loopback is rewritten to
``host.docker.internal``, which the container maps to the host's gateway (``extra_hosts``).
With ``network_mode: host`` the container shares the host's loopback and keeps the URL.
"""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from agent_core import FlowRun
from agent_core.errors import DeploymentError
from agent_core.serving import is_loopback
from agent_core.workload import API_URL
from agent_plugin_docker.state import BACKEND

LABEL_RUN = "agent.flow_run_id"
LABEL_ATTEMPT = "agent.attempt"
LABEL_AGENT = "agent.agent_name"
LABEL_BACKEND = "agent.backend"
LABEL_FLOW = "agent.flow_name"
LABEL_FLOW_ID = "agent.flow_id"
LABEL_AUTO_REMOVE = "agent.auto_remove"

NAME_PREFIX = "agent-run-"
HOST_ALIAS = "host.docker.internal"
HOST_GATEWAY = "host-gateway"  # the engine's name for the host's address on its bridge (20.10+)
# Network modes whose containers do not sit on a bridge of this host.
_NOT_BRIDGED = ("host", "none")


def container_name(flow_run: FlowRun) -> str:
    return f"{NAME_PREFIX}{flow_run.key}"


def command(value: str | list[str] | None, what: str) -> list[str] | None:
    """A command line (split like a shell) or argv as the engine wants it; None: the image's own."""
    if value is None or isinstance(value, list):
        return value or None
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise DeploymentError(f"cannot parse the {what} {value!r}: {exc}") from None
    return argv or None


def networks(run_config: dict[str, Any], settings: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The network mode, or the networks, of a run: its own choice replaces the agent's as a whole."""
    if run_config.get("network_mode") or run_config.get("networks"):
        return run_config.get("network_mode"), list(run_config.get("networks") or [])
    return settings.get("network_mode"), list(settings.get("networks") or [])


def on_bridge(network_mode: str | None) -> bool:
    """Whether such a container is on a bridge network (the default one, ``bridge`` or named ones)."""
    return network_mode not in _NOT_BRIDGED and not (network_mode or "").startswith("container:")


def host_api_url(url: str) -> str | None:
    """``url`` with a loopback host replaced by :data:`HOST_ALIAS`; None if it is not on loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not is_loopback(host):
        return None
    netloc = HOST_ALIAS + (f":{parts.port}" if parts.port else "")
    if "@" in parts.netloc:
        netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _with_host_alias(extra_hosts: Any) -> Any:
    """``create_options.extra_hosts`` (a mapping or ``["name:ip"]``) with the host alias added,
    unless the run maps that name itself."""
    if isinstance(extra_hosts, dict):
        return {HOST_ALIAS: HOST_GATEWAY, **extra_hosts}
    if isinstance(extra_hosts, list):
        if any(str(entry).startswith(f"{HOST_ALIAS}:") for entry in extra_hosts):
            return extra_hosts
        return [*extra_hosts, f"{HOST_ALIAS}:{HOST_GATEWAY}"]
    return {HOST_ALIAS: HOST_GATEWAY}


def create_options(flow_run: FlowRun, run_config: dict[str, Any], agent: Any, image: str) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` for this run."""
    settings = agent.backend_settings
    auto_remove = run_config.get("auto_remove")
    if auto_remove is None:
        auto_remove = settings.get("auto_remove", True)
    labels = {
        **settings.get("container_labels", {}),
        **run_config.get("container_labels", {}),
        LABEL_BACKEND: BACKEND,
        LABEL_RUN: flow_run.id,
        LABEL_ATTEMPT: str(flow_run.attempt),
        LABEL_AGENT: agent.name,
        LABEL_FLOW: flow_run.flow_name,
        LABEL_FLOW_ID: flow_run.flow_id,
        LABEL_AUTO_REMOVE: "true" if auto_remove else "false",
    }
    env = agent.flow_run_env(flow_run, run_config.get("env"))
    options: dict[str, Any] = {
        **run_config.get("create_options", {}),
        "image": image,
        "command": command(run_config.get("command") or flow_run.command, "command"),
        "name": container_name(flow_run),
        "labels": labels,
        "environment": env,
        "detach": True,
    }
    if (entrypoint := command(run_config.get("entrypoint"), "entrypoint")) is not None:
        options["entrypoint"] = entrypoint
    network_mode, joined = networks(run_config, settings)
    if network_mode:
        options["network_mode"] = network_mode
    elif joined:
        options["network"] = joined[0]  # set at creation; the others are connected before start
    # Only the agent's own URL (a layer may have pointed the workload elsewhere on purpose).
    if on_bridge(network_mode) and env.get(API_URL) == agent.api_url:
        rewritten = host_api_url(agent.api_url)
        if rewritten is not None:
            env[API_URL] = rewritten
            options["extra_hosts"] = _with_host_alias(options.get("extra_hosts"))
    volumes = [*settings.get("volumes", []), *run_config.get("volumes", [])]
    if volumes:
        options["volumes"] = volumes
    if run_config.get("mem_limit") is not None:
        options["mem_limit"] = run_config["mem_limit"]
    if run_config.get("cpus") is not None:
        options["nano_cpus"] = int(run_config["cpus"] * 1e9)
    return options
