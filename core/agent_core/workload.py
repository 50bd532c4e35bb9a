"""What every workload can count on, on every backend: its environment and its output.

Written once here; backends only *place* it (a process's environment, a container's, a
task's container overrides). ``docs/workload.md`` is the user-facing page of this contract.

The environment is built in layers, each replacing the one before:

1. defaults: ``PYTHONUNBUFFERED=1`` (output reaches the run's logs as it is printed) and
   ``AGENT_LOG_LEVEL``, the agent's own ``[agent] log_level`` (``INFO`` unless set);
2. the agent process's own environment, for backends that inherit it (local): without the
   agent's ``AGENT__*`` settings and without any variable holding the agent's key;
3. ``AGENT_API_URL`` (the API the agent uses) and ``AGENT_API_KEY`` (the workload key, when the
   operator gives one: ``[agent] workload_api_key``, or ``pass_api_key`` for the agent's own);
   placed this low so that the later layers may point a workload elsewhere;
4. the agent's ``env`` (``--env``, ``[agent] env``, a server-side agent config);
5. the ``flow_run_env`` hook results (extensions: secrets from a vault...);
6. the run config's ``env``;
7. the run's own variables, which nothing overrides: ``AGENT_FLOW_RUN_ID``,
   ``AGENT_FLOW_RUN_ATTEMPT``, ``AGENT_FLOW_RUN_PARAMETERS``, ``AGENT_FLOW_ID``,
   ``AGENT_FLOW_NAME`` and ``AGENT_LABELS`` (the agent's labels as a JSON list).

A ``None`` (JSON ``null``) value in any layer removes the variable. ``AGENT__*`` names never
reach a workload: they are the agent's own settings (a layer that sets one gets a warning in
the run's logs instead).

Output: backends ship each line of workload output with ``agent.write_output``, which keeps
it out of the API when :func:`ships_output` says no (``[agent] ship_output = false``, or a run
config's ``ship_output: false``: a run may turn output off, never on).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_core.errors import DeploymentError, RunConfigMismatch
from agent_core.models import FlowRun
from agent_core.runconfig import core_options

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.settings import AgentSettings

SETTINGS_PREFIX = "AGENT__"
API_URL = "AGENT_API_URL"
API_KEY = "AGENT_API_KEY"
LOG_LEVEL = "AGENT_LOG_LEVEL"
PYTHONPATH = "PYTHONPATH"
DEFAULT_LOG_LEVEL = "INFO"

#: Lowest layer: what a workload gets unless anything else says otherwise (the log level is
#: the agent's own, this one without a setting).
DEFAULTS: Mapping[str, str] = {"PYTHONUNBUFFERED": "1", LOG_LEVEL: DEFAULT_LOG_LEVEL}

#: The run's own variables (top layer): a workload can always trust them.
RUN_VARIABLES = (
    "AGENT_FLOW_RUN_ID",
    "AGENT_FLOW_RUN_ATTEMPT",
    "AGENT_FLOW_RUN_PARAMETERS",
    "AGENT_FLOW_ID",
    "AGENT_FLOW_NAME",
    "AGENT_LABELS",
)

EnvLayer = Mapping[str, "str | None"]


@dataclass(frozen=True)
class WorkloadEnvironment:
    """The merged environment, and the ``AGENT__*`` names a layer asked for that were left out."""

    env: dict[str, str]
    dropped: tuple[str, ...] = ()


def run_variables(flow_run: FlowRun, labels: Iterable[str]) -> dict[str, str]:
    """The variables that describe the run (the top layer)."""
    return {
        "AGENT_FLOW_RUN_ID": flow_run.id,
        "AGENT_FLOW_RUN_ATTEMPT": str(flow_run.attempt),
        "AGENT_FLOW_RUN_PARAMETERS": json.dumps(flow_run.parameters),
        "AGENT_FLOW_ID": flow_run.flow_id,
        "AGENT_FLOW_NAME": flow_run.flow_name,
        "AGENT_LABELS": json.dumps(sorted(set(labels))),
    }


def workload_api_key(settings: AgentSettings, agent_key: str) -> str:
    """The key workloads get as ``AGENT_API_KEY``: the configured workload key, the agent's own
    one if the operator opted in (``pass_api_key``), else none (``""``)."""
    if settings.workload_api_key:
        return settings.workload_api_key
    return agent_key if settings.pass_api_key else ""


def agent_process_environment(agent_key: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The agent process's environment as a workload may inherit it (the local backend's base).

    Without ``AGENT__*`` (the agent's settings) and without any variable whose value is the
    agent's key (``--key "$TOKEN"`` leaves the key in ``TOKEN``).
    """
    source = os.environ if environ is None else environ
    return {
        name: value
        for name, value in source.items()
        if not name.startswith(SETTINGS_PREFIX) and not (agent_key and value == agent_key)
    }


def build_environment(
    flow_run: FlowRun,
    *,
    api_url: str,
    api_key: str = "",
    labels: Iterable[str] = (),
    agent_env: EnvLayer | None = None,
    hook_envs: Sequence[tuple[str, EnvLayer]] = (),
    run_config_env: EnvLayer | None = None,
    base: Mapping[str, str] | None = None,
    log_level: str = DEFAULT_LOG_LEVEL,
) -> WorkloadEnvironment:
    """Merge the layers (see the module docstring) into exactly the variables to set.

    :param api_key: the workload key (:func:`workload_api_key`); ``""`` sets no ``AGENT_API_KEY``.
    :param hook_envs: ``(plugin name, result)`` of each ``flow_run_env`` hook, the one that
        wins first.
    :param base: the agent process's environment, for backends that inherit it.
    :param log_level: the default of ``AGENT_LOG_LEVEL`` (the agent's own level).
    :raise DeploymentError: a variable name or value the platform cannot carry (naming the layer).
    """
    env: dict[str, str] = {**DEFAULTS, LOG_LEVEL: (log_level or DEFAULT_LOG_LEVEL).upper()}
    env.update((name, value) for name, value in (base or {}).items() if not name.startswith(SETTINGS_PREFIX))
    env[API_URL] = api_url
    if api_key:
        env[API_KEY] = api_key
    else:
        env.pop(API_KEY, None)  # an inherited one is not the operator's choice
    dropped: set[str] = set()
    layers: list[tuple[str, EnvLayer]] = [("the agent's env", agent_env or {})]
    layers += [(f"the flow_run_env hook of plugin {name!r}", result) for name, result in reversed(hook_envs)]
    layers.append(("the run config's env", run_config_env or {}))
    for where, layer in layers:
        for name, value in layer.items():
            _check_variable(where, name, value)
            if name.startswith(SETTINGS_PREFIX):
                dropped.add(name)
            elif value is None:
                env.pop(name, None)
            else:
                env[name] = value
    env.update(run_variables(flow_run, labels))
    return WorkloadEnvironment(env, tuple(sorted(dropped)))


def _check_variable(where: str, name: Any, value: Any) -> None:
    if not isinstance(name, str) or not name or "=" in name or "\0" in name:
        raise DeploymentError(
            f"invalid environment variable name {name!r} in {where}: a name is a non-empty string without '='"
        )
    if value is not None and (not isinstance(value, str) or "\0" in value):
        raise DeploymentError(
            f"invalid value for environment variable {name} in {where}: {value!r} "
            "(give a string, or null to remove the variable)"
        )


def hook_environments(agent: Agent, flow_run: FlowRun) -> list[tuple[str, EnvLayer]]:
    """Each ``flow_run_env`` result, ``(plugin name, mapping)``, in the order pluggy calls them.

    Each plugin is called on its own (as ``engine.hooks.call_each`` does), so that an error
    names the plugin and hook tracing still sees the call.

    :raise DeploymentError: a hook raised or returned something other than a mapping.
    """
    pm = agent.pm
    plugins = [impl.plugin for impl in reversed(pm.hook.flow_run_env.get_hookimpls())]
    found: list[tuple[str, EnvLayer]] = []
    for plugin in plugins:
        name = pm.get_name(plugin) or repr(plugin)
        caller = pm.subset_hook_caller("flow_run_env", remove_plugins=[p for p in plugins if p is not plugin])
        try:
            results = caller(flow_run=flow_run, agent=agent)
        except Exception as exc:
            agent.logger.error("flow_run_env hook of plugin %r failed for run %s", name, flow_run.id, exc_info=True)
            raise DeploymentError(f"the flow_run_env hook of plugin {name!r} failed: {exc}") from None
        for result in results:
            if not isinstance(result, Mapping):
                raise DeploymentError(
                    f"the flow_run_env hook of plugin {name!r} returned {type(result).__name__}, "
                    "not a mapping of variable names to strings (or None)"
                )
            found.append((name, result))
    return found


def flow_run_env(
    agent: Agent,
    flow_run: FlowRun,
    run_config_env: EnvLayer | None = None,
    *,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of ``flow_run``'s workload: exactly the variables to set.

    What ``Agent.flow_run_env`` answers. Calls the ``flow_run_env`` hooks, and writes a warning
    to the run's logs for ``AGENT__*`` names a layer tried to pass.

    :param base: the agent process's environment for a backend whose workloads inherit it
        (:func:`agent_process_environment`); ``None`` for the others.
    :raise DeploymentError: a hook failed, or a variable cannot be set (the run then fails).
    """
    built = build_environment(
        flow_run,
        api_url=agent.api_url,
        api_key=workload_api_key(agent.settings, agent.api_key),
        labels=agent.labels,
        agent_env=agent.env,
        hook_envs=hook_environments(agent, flow_run),
        run_config_env=run_config_env,
        base=base,
        log_level=agent.settings.log_level,
    )
    if built.dropped:
        agent.write_run_log(
            flow_run,
            f"Not passed to the workload: {', '.join(built.dropped)} "
            f"({SETTINGS_PREFIX}* variables are agent settings and never reach a workload)",
            "WARNING",
        )
    return built.env


def with_python_path(env: Mapping[str, str], entries: Iterable[str]) -> dict[str, str]:
    """``env`` with ``entries`` first on ``PYTHONPATH``, before what it held already."""
    parts = [entry for entry in entries if entry]
    if env.get(PYTHONPATH):
        parts.append(env[PYTHONPATH])
    updated = dict(env)
    if parts:
        updated[PYTHONPATH] = os.pathsep.join(parts)
    return updated


def ships_output(agent: Agent, flow_run: FlowRun) -> bool:
    """Whether the workload's output of ``flow_run`` goes to the run's logs.

    Off when the agent says so (``[agent] ship_output = false``) or the run config does
    (``"ship_output": false``); a run config cannot turn it on against the agent. Backends also
    use this to keep the output tail out of a failed run's message (``deployment_logs``).
    """
    if not agent.settings.ship_output:
        return False
    try:
        return core_options(flow_run.run_config).ship_output
    except RunConfigMismatch:
        return False  # such a run never deployed; nothing of it is shipped
