"""One table of what a workload's environment holds, shared by every backend's tests.

``docs/workload.md`` states the contract; this table is its executable form. A backend's test
runs one workload that prints its environment (:func:`dump_command`), through an agent set up
from the table, and compares what the workload saw with :func:`expected`:

- the agent: :func:`agent_settings` (``AgentSettings`` fields: labels, ``env``, the workload
  key), the agent's own key (:func:`create_agent_key`), and the :class:`EnvTableHook` plugin for
  the ``flow_run_env`` layer;
- the agent process's environment (:func:`process_environment`, e.g. with
  ``monkeypatch.setenv``), which only backends that inherit it (local) pass on;
- the run: :data:`PARAMETERS` and a run config of the backend's type whose ``env`` is
  :func:`run_config_env`;
- then :func:`mismatches` on the dumped environment (:func:`parse_dump` reads it back from the
  run's logs) is empty.

A backend that sends the environment some other way (the ECS backend's container overrides)
runs the same table on what it would send.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Any

from agent_core import FlowRun, hookimpl
from agent_core.client import APIClient

LAYERS = ("process", "agent", "hook", "run_config")

LABELS = ["env-table-a", "env-table-b"]
PARAMETERS = {"n": 1, "words": "two words"}
WORKLOAD_KEY = "env-table-workload-key"
OTHER_API = "http://api.elsewhere.example:4200"
AGENT_KEY = "{agent_key}"  # placeholder: the agent's own (real) key, from create_agent_key
DUMP_MARKER = "AGENT-ENV-TABLE:"


@dataclass(frozen=True)
class Row:
    """One variable: the value each layer gives it (``None``: the layer removes it), and what the
    workload must see (``None``: absent). ``{run_id}``-style placeholders are filled in from the
    run: ``run_id``, ``flow_id``, ``flow_name``, ``parameters``, ``labels``, ``agent_key``."""

    variable: str
    given: Mapping[str, str | None] = field(default_factory=dict)
    expected: str | None = None
    #: what a backend that inherits the agent process's environment shows instead
    inherited: str | EllipsisType | None = ...
    why: str = ""


TABLE: tuple[Row, ...] = (
    # The run's own variables: always there, and no layer overrides them.
    Row("AGENT_FLOW_RUN_ID", {"agent": "spoofed", "run_config": "spoofed"}, "{run_id}", why="run variables win"),
    Row("AGENT_FLOW_RUN_ATTEMPT", {"hook": "9"}, "1", why="run variables win over hooks"),
    Row("AGENT_FLOW_ID", {}, "{flow_id}"),
    Row("AGENT_FLOW_NAME", {}, "{flow_name}"),
    Row("AGENT_FLOW_RUN_PARAMETERS", {"run_config": None}, "{parameters}", why="a null cannot remove them"),
    Row("AGENT_LABELS", {}, "{labels}", why="the agent's labels as a JSON list"),
    # The API: the run config may point a workload elsewhere; the workload key is the operator's.
    Row("AGENT_API_URL", {"run_config": OTHER_API}, OTHER_API, why="overridable by the run config"),
    Row("AGENT_API_KEY", {"process": "inherited-key"}, WORKLOAD_KEY, why="the workload key, never an inherited one"),
    Row("ENV_TABLE_COPY_OF_AGENT_KEY", {"process": AGENT_KEY}, None, why="the agent's key is never inherited"),
    # Defaults, overridable like anything else.
    Row("PYTHONUNBUFFERED", {}, "1"),
    Row("AGENT_LOG_LEVEL", {"agent": "WARNING"}, "WARNING", why="a default the agent's env replaces"),
    # Each layer replaces the one before.
    Row("ENV_TABLE_PROCESS_ONLY", {"process": "process"}, None, inherited="process", why="local inherits"),
    Row("ENV_TABLE_PROCESS_VS_AGENT", {"process": "process", "agent": "agent"}, "agent"),
    Row("ENV_TABLE_AGENT_ONLY", {"agent": "agent"}, "agent"),
    Row("ENV_TABLE_AGENT_VS_HOOK", {"agent": "agent", "hook": "hook"}, "hook"),
    Row("ENV_TABLE_HOOK_ONLY", {"hook": "hook"}, "hook"),
    Row("ENV_TABLE_HOOK_VS_RUN_CONFIG", {"hook": "hook", "run_config": "run-config"}, "run-config"),
    Row("ENV_TABLE_AGENT_VS_RUN_CONFIG", {"agent": "agent", "run_config": "run-config"}, "run-config"),
    Row("ENV_TABLE_RUN_CONFIG_ONLY", {"run_config": "run-config"}, "run-config"),
    Row("ENV_TABLE_EMPTY_VALUE", {"run_config": ""}, "", why="an empty string is a value"),
    # null removes, whatever set the variable below.
    Row("ENV_TABLE_REMOVED_BY_AGENT", {"process": "process", "agent": None}, None),
    Row("ENV_TABLE_REMOVED_BY_HOOK", {"agent": "agent", "hook": None}, None),
    Row("ENV_TABLE_REMOVED_BY_RUN_CONFIG", {"agent": "agent", "hook": "hook", "run_config": None}, None),
    Row("ENV_TABLE_REMOVED_THEN_SET", {"agent": None, "run_config": "run-config"}, "run-config"),
    # The agent's settings never pass, from any layer.
    Row("AGENT__BACKENDS__ENVTABLE__SECRET", {"process": "setting"}, None, why="AGENT__* is the agent's own"),
    Row("AGENT__AGENT__NAME", {"agent": "x", "run_config": "x"}, None, why="AGENT__* is never passed"),
)


def layer(name: str) -> dict[str, str | None]:
    """What the layer ``name`` (one of :data:`LAYERS`) gives, placeholders left in."""
    return {row.variable: row.given[name] for row in TABLE if name in row.given}


def process_environment(agent_key: str) -> dict[str, str]:
    """Variables to put in the agent process's environment (all strings)."""
    return {name: _fill(value, {"agent_key": agent_key}) or "" for name, value in layer("process").items()}


def agent_settings() -> dict[str, Any]:
    """``AgentSettings`` fields of the agent under test (besides backend, name, API and key)."""
    return {"labels": list(LABELS), "env": layer("agent"), "workload_api_key": WORKLOAD_KEY}


def run_config_env() -> dict[str, str | None]:
    return layer("run_config")


class EnvTableHook:
    """An in-test plugin giving the table's ``flow_run_env`` layer."""

    name = "env-table-hook"

    @hookimpl
    def flow_run_env(self, flow_run: FlowRun, agent: Any) -> dict[str, str | None]:
        return layer("hook")


def create_agent_key(admin: APIClient) -> str:
    """A runner key for the agent under test (the table checks it never leaks)."""
    return str(admin.create_key("runner", "env-table agent")["key"])


def dump_command(python: str = "python3") -> str:
    """A flow command printing the whole environment as one line (found by :func:`parse_dump`).

    The JSON is hex-encoded: the agent masks secret values in every run-log line, workload
    output included, and the table must see the keys the workload really got.
    """
    code = f"import json, os; print({DUMP_MARKER!r} + json.dumps(dict(os.environ), sort_keys=True).encode().hex())"
    return shlex.join([python, "-c", code])


def parse_dump(lines: Iterable[str]) -> dict[str, str] | None:
    """The environment a :func:`dump_command` workload printed, from its output lines."""
    for line in lines:
        if line.startswith(DUMP_MARKER):
            return dict(json.loads(bytes.fromhex(line[len(DUMP_MARKER) :].strip())))
    return None


def expected(run: FlowRun | Mapping[str, Any], agent_key: str, *, inherits: bool) -> dict[str, str | None]:
    """Each table variable and what the workload of ``run`` must see (``None``: absent).

    :param inherits: the backend starts workloads from the agent process's environment.
    """
    flow_run = run if isinstance(run, FlowRun) else FlowRun.from_api(dict(run))
    values = {
        "run_id": flow_run.id,
        "flow_id": flow_run.flow_id,
        "flow_name": flow_run.flow_name,
        "parameters": json.dumps(flow_run.parameters),
        "labels": json.dumps(sorted(LABELS)),
        "agent_key": agent_key,
    }
    result = {}
    for row in TABLE:
        value = row.expected if not inherits or isinstance(row.inherited, EllipsisType) else row.inherited
        result[row.variable] = _fill(value, values)
    return result


def mismatches(
    env: Mapping[str, str], run: FlowRun | Mapping[str, Any], agent_key: str, *, inherits: bool
) -> list[str]:
    """How ``env`` (what the workload saw) differs from the table; empty when it matches."""
    problems = []
    for variable, want in expected(run, agent_key, inherits=inherits).items():
        got = env.get(variable)
        if got != want:
            row = next(row for row in TABLE if row.variable == variable)
            shown = "absent" if got is None else repr(got)
            wanted = "absent" if want is None else repr(want)
            problems.append(f"{variable}: {shown}, expected {wanted} (given {dict(row.given)}) {row.why}".rstrip())
    if agent_key and agent_key in env.values():
        problems.append("the agent's own key reached the workload")
    return problems


def _fill(value: str | None, values: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    for name, text in values.items():
        value = value.replace("{" + name + "}", text)
    return value
