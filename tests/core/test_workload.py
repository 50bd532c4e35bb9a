"""The workload contract in core (``agent_core.workload``): environment layers, hooks, output off.

The layer rules are checked on ``build_environment`` directly (and the shared table of
``agent_core.testing.workload_env`` with it, which the backends then run for real); the hook
and output rules through real agents on a real API server.
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from agent_core import FlowRun, hookimpl
from agent_core.client import APIClient
from agent_core.engine.settings import AgentSettings
from agent_core.errors import BadRequest, DeploymentError
from agent_core.models import Deployment
from agent_core.testing import workload_env
from agent_core.workload import (
    agent_process_environment,
    build_environment,
    with_python_path,
    workload_api_key,
)
from tests.core.conftest import Backend, create_run, run_logs, wait_for_state, wait_until

API = "http://127.0.0.1:4200"


def flow_run(**overrides: Any) -> FlowRun:
    data = {
        "id": "run-1",
        "flow_id": "flow-1",
        "flow": {"name": "etl", "command": "true"},
        "parameters": {"day": "2026-11-25"},
        "scheduled_start_time": "2026-11-25T00:00:00Z",
        "state": {"type": "Submitted"},
        "version": 2,
        **overrides,
    }
    return FlowRun.from_api(data)


# --- the layers -------------------------------------------------------------------------------


def test_a_workload_gets_the_run_variables_the_api_url_and_the_defaults() -> None:
    env = build_environment(flow_run(attempt=2), api_url=API, labels=["b", "a", "a"]).env

    assert env == {
        "AGENT_FLOW_RUN_ID": "run-1",
        "AGENT_FLOW_RUN_ATTEMPT": "2",
        "AGENT_FLOW_RUN_PARAMETERS": '{"day": "2026-11-25"}',
        "AGENT_FLOW_ID": "flow-1",
        "AGENT_FLOW_NAME": "etl",
        "AGENT_LABELS": '["a", "b"]',
        "AGENT_API_URL": API,
        "AGENT_LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.mark.parametrize("inherits", [False, True], ids=["placed", "inherited"])
def test_the_shared_table_holds_for_the_layers_as_core_merges_them(inherits: bool) -> None:
    """The table the backends run for real, checked here on the merge alone."""
    run = flow_run(parameters=workload_env.PARAMETERS)
    settings = AgentSettings(backend="x", **workload_env.agent_settings())
    base = agent_process_environment("agk_agent", workload_env.process_environment("agk_agent")) if inherits else None

    built = build_environment(
        run,
        api_url=API,
        api_key=workload_api_key(settings, "agk_agent"),
        labels=settings.labels,
        agent_env=settings.env,
        hook_envs=[("env-table-hook", workload_env.layer("hook"))],
        run_config_env=workload_env.run_config_env(),
        base=base,
    )

    assert workload_env.mismatches(built.env, run, "agk_agent", inherits=inherits) == []


def test_the_log_level_default_is_the_agents_own_level(make_agent, sqlite_api: APIClient) -> None:
    envs: dict[str, dict[str, str]] = {}
    run = create_run(sqlite_api)
    make_agent([env_capturing_backend(envs)], start=True, log_level="debug")

    env = wait_until(lambda: envs.get(run["id"]))

    assert env["AGENT_LOG_LEVEL"] == "DEBUG"


def test_the_api_url_and_key_may_be_overridden_but_the_run_variables_may_not() -> None:
    env = build_environment(
        flow_run(),
        api_url=API,
        api_key="wk",
        agent_env={"AGENT_API_URL": "http://from-agent:1", "AGENT_FLOW_ID": "spoofed"},
        hook_envs=[("vault", {"AGENT_API_KEY": "per-run-key"})],
        run_config_env={"AGENT_API_URL": "http://from-run-config:2", "AGENT_LABELS": "[]"},
    ).env

    assert env["AGENT_API_URL"] == "http://from-run-config:2"
    assert env["AGENT_API_KEY"] == "per-run-key"
    assert env["AGENT_FLOW_ID"] == "flow-1"
    assert env["AGENT_LABELS"] == "[]"  # the agent has no labels: the run config did not set it


def test_null_removes_a_variable_from_any_layer_even_a_default() -> None:
    env = build_environment(
        flow_run(),
        api_url=API,
        base={"FROM_PROCESS": "p", "HOME": "/root"},
        agent_env={"FROM_PROCESS": None, "PYTHONUNBUFFERED": None},
        hook_envs=[("vault", {"HOME": None})],
        run_config_env={"AGENT_API_URL": None, "AGENT_FLOW_RUN_ID": None},
    ).env

    assert {"FROM_PROCESS", "PYTHONUNBUFFERED", "HOME", "AGENT_API_URL"}.isdisjoint(env)
    assert env["AGENT_FLOW_RUN_ID"] == "run-1"


def test_agent_settings_never_reach_a_workload_and_explicit_ones_are_reported() -> None:
    built = build_environment(
        flow_run(),
        api_url=API,
        base={"AGENT__API__KEY": "agk_secret", "KEEP": "1"},
        agent_env={"AGENT__AGENT__NAME": "x"},
        hook_envs=[("vault", {"AGENT__BACKENDS__DOCKER__IMAGE": "y"})],
        run_config_env={"AGENT__API__URL": "z", "AGENT_API_URL_IS_FINE": "1"},
    )

    assert not [name for name in built.env if name.startswith("AGENT__")]
    assert built.env["KEEP"] == "1" and built.env["AGENT_API_URL_IS_FINE"] == "1"
    # The inherited one is silently the agent's own; the others were asked for by someone.
    assert built.dropped == ("AGENT__AGENT__NAME", "AGENT__API__URL", "AGENT__BACKENDS__DOCKER__IMAGE")


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, ""),
        ({"pass_api_key": True}, "agk_agent"),
        ({"workload_api_key": "agk_workload"}, "agk_workload"),
        ({"workload_api_key": "agk_workload", "pass_api_key": True}, "agk_workload"),
    ],
    ids=["default-none", "opt-in-agent-key", "workload-key", "workload-key-wins"],
)
def test_workloads_get_the_agents_key_only_when_the_operator_says_so(settings: dict, expected: str) -> None:
    key = workload_api_key(AgentSettings(backend="x", **settings), "agk_agent")
    env = build_environment(flow_run(), api_url=API, api_key=key, base={"AGENT_API_KEY": "inherited"}).env

    assert key == expected
    assert env.get("AGENT_API_KEY") == (expected or None)


def test_the_inherited_environment_leaves_out_agent_settings_and_any_copy_of_the_agents_key() -> None:
    environ = {"PATH": "/bin", "AGENT__API__KEY": "agk_agent", "TOKEN": "agk_agent", "AGENT_HOME": "/h"}

    assert agent_process_environment("agk_agent", environ) == {"PATH": "/bin", "AGENT_HOME": "/h"}
    assert agent_process_environment("", {"EMPTY": ""}) == {"EMPTY": ""}


@pytest.mark.parametrize(
    ("layers", "words"),
    [
        ({"agent_env": {"A=B": "1"}}, ["'A=B'", "the agent's env"]),
        ({"run_config_env": {"": "1"}}, ["''", "the run config's env"]),
        ({"run_config_env": {"N": 3}}, ["N", "3", "the run config's env", "null to remove"]),
        ({"hook_envs": [("vault", {"N": ["x"]})]}, ["N", "plugin 'vault'"]),
        ({"hook_envs": [("vault", {"N": "a\0b"})]}, ["N", "plugin 'vault'"]),
    ],
    ids=["equals-in-name", "empty-name", "number-value", "list-value", "nul-in-value"],
)
def test_a_variable_a_platform_cannot_carry_fails_naming_it_and_its_layer(layers: dict, words: list[str]) -> None:
    with pytest.raises(DeploymentError) as info:
        build_environment(flow_run(), api_url=API, **layers)

    for word in words:
        assert word in str(info.value)


def test_the_working_directory_and_import_paths_come_first_on_pythonpath() -> None:
    env = with_python_path({"PYTHONPATH": "/already/there"}, ["/work", "/imports/a", "", "/imports/b"])

    assert env["PYTHONPATH"] == os.pathsep.join(["/work", "/imports/a", "/imports/b", "/already/there"])
    assert with_python_path({}, []) == {}


# --- through a real agent: the flow_run_env hook ---------------------------------------------


class EnvHook:
    def __init__(self, name: str, result: Any = None, error: Exception | None = None) -> None:
        self.name = name
        self.result = result
        self.error = error
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def flow_run_env(self, flow_run: FlowRun, agent: Any) -> Any:
        self.calls.append((flow_run.id, threading.current_thread().name))
        if self.error is not None:
            raise self.error
        return self.result


class TryFirstEnvHook(EnvHook):
    @hookimpl(tryfirst=True)
    def flow_run_env(self, flow_run: FlowRun, agent: Any) -> Any:
        return self.result


def env_capturing_backend(envs: dict[str, dict[str, str]]) -> Backend:
    def capture(flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        envs[flow_run.id] = agent.flow_run_env(flow_run, {"RC": "run-config", "OVERRIDDEN_BY_RC": "rc"})
        return Deployment("x", f"wl-{flow_run.key}")

    return Backend(behaviour=capture)


def test_a_flow_run_env_hook_adds_variables_between_the_agents_env_and_the_run_configs(
    make_agent, sqlite_api: APIClient
) -> None:
    envs: dict[str, dict[str, str]] = {}
    hook = EnvHook("vault", {"SECRET": "s3cret", "OVERRIDDEN_BY_RC": "hook", "AGENT_ENV": "hook", "GONE": None})
    run = create_run(sqlite_api)
    make_agent([env_capturing_backend(envs), hook], start=True, env={"AGENT_ENV": "agent", "GONE": "agent"})

    env = wait_until(lambda: envs.get(run["id"]))

    assert env["SECRET"] == "s3cret"
    assert env["AGENT_ENV"] == "hook"
    assert env["OVERRIDDEN_BY_RC"] == "rc"
    assert "GONE" not in env
    assert [thread.split("-")[0] for _, thread in hook.calls] == ["deploy"]


def test_where_two_plugins_set_one_variable_the_one_called_first_wins(make_agent, sqlite_api: APIClient) -> None:
    envs: dict[str, dict[str, str]] = {}
    run = create_run(sqlite_api)
    plugins = [
        env_capturing_backend(envs),
        TryFirstEnvHook("first", {"WHO": "tryfirst", "ONLY_FIRST": "1"}),
        EnvHook("later", {"WHO": "later", "ONLY_LATER": "1"}),
    ]
    make_agent(plugins, start=True)

    env = wait_until(lambda: envs.get(run["id"]))

    assert env["WHO"] == "tryfirst"
    assert env["ONLY_FIRST"] == env["ONLY_LATER"] == "1"


@pytest.mark.parametrize(
    ("hook", "words"),
    [
        (
            EnvHook("vault", error=RuntimeError("vault sealed")),
            "the flow_run_env hook of plugin 'vault' failed: vault sealed",
        ),
        (EnvHook("vault", ["A=1"]), "the flow_run_env hook of plugin 'vault' returned list, not a mapping"),
    ],
    ids=["raises", "returns-a-list"],
)
def test_a_failing_flow_run_env_hook_fails_the_run_naming_the_plugin(
    make_agent, sqlite_api: APIClient, hook: EnvHook, words: str
) -> None:
    envs: dict[str, dict[str, str]] = {}
    run = create_run(sqlite_api)
    make_agent([env_capturing_backend(envs), hook], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert words in failed["state"]["message"]
    assert run["id"] not in envs


def test_agent_settings_a_run_config_tries_to_pass_are_dropped_with_a_warning_in_the_runs_logs(
    make_agent, sqlite_api: APIClient
) -> None:
    envs: dict[str, dict[str, str]] = {}

    def capture(flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        envs[flow_run.id] = agent.flow_run_env(flow_run, run_config.get("env"))
        return Deployment("x", f"wl-{flow_run.key}")

    run = create_run(sqlite_api, run_config={"type": "x", "env": {"AGENT__API__KEY": "x", "FINE": "1"}})
    make_agent([Backend(behaviour=capture)], start=True)

    env = wait_until(lambda: envs.get(run["id"]))
    logs = wait_until(lambda: [log for log in run_logs(sqlite_api, run["id"]) if "AGENT__API__KEY" in log["message"]])

    assert "AGENT__API__KEY" not in env and env["FINE"] == "1"
    assert logs[0]["level"] == "WARNING"
    assert "never reach a workload" in logs[0]["message"]


# --- through a real agent: output off --------------------------------------------------------


def output_backend() -> Backend:
    def deploy(flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        agent.write_run_log(flow_run, "backend line")
        agent.write_output(flow_run, "workload line")
        return Deployment("x", f"wl-{flow_run.key}")

    return Backend(behaviour=deploy)


@pytest.mark.parametrize(
    ("agent_ships", "run_config", "shipped"),
    [
        (True, None, True),
        (False, None, False),
        (True, {"type": "x", "ship_output": False}, False),
        (False, {"type": "x", "ship_output": True}, False),
        (True, {"type": "x", "ship_output": True}, True),
    ],
    ids=["default", "agent-off", "run-off", "run-cannot-turn-it-on", "run-says-on"],
)
def test_workload_output_reaches_the_runs_logs_unless_the_agent_or_the_run_turns_it_off(
    make_agent, sqlite_api: APIClient, agent_ships: bool, run_config: dict | None, shipped: bool
) -> None:
    run = create_run(sqlite_api, run_config=run_config)
    agent = make_agent([output_backend()], start=True, ship_output=agent_ships)

    wait_until(lambda: any(log["message"].startswith("Submitted") for log in run_logs(sqlite_api, run["id"])))
    agent.run_logs.flush(time.monotonic() + 5)
    messages = [log["message"] for log in run_logs(sqlite_api, run["id"])]

    assert "backend line" in messages
    assert ("workload line" in messages) is shipped


def test_an_invalid_ship_output_is_refused_when_the_run_is_created(sqlite_api: APIClient) -> None:
    with pytest.raises(BadRequest) as caught:
        create_run(sqlite_api, run_config={"type": "x", "ship_output": "no"})

    assert "ship_output must be true or false" in str(caught.value)


def test_the_labels_variable_is_a_json_list_of_the_agents_labels(make_agent, sqlite_api: APIClient) -> None:
    envs: dict[str, dict[str, str]] = {}
    run = create_run(sqlite_api)
    make_agent([env_capturing_backend(envs)], start=True, labels=["gpu", "eu"])

    env = wait_until(lambda: envs.get(run["id"]))

    assert json.loads(env["AGENT_LABELS"]) == ["eu", "gpu"]
