"""The workload contract on the ecs backend: the shared environment table, nulls, output off.

The environment reaches a task through the run-task container overrides: the table is checked
on the overrides as ECS (moto) recorded them, and on what the workload printed (the task
runtime starts the flow container's command with them, as ECS does).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest

from agent_core import Deployment, FlowRun
from agent_core.client import APIClient
from agent_core.testing import workload_env
from agent_core.testing.harness import wait_for_final
from tests.plugins.ecs.helpers import CallCounter, create_run, log_messages, plugin_state
from tests.plugins.ecs.runtime import TaskRuntime


def overrides_env(ecs: Any, cluster: str, task_arn: str, container: str = "flow") -> dict[str, str]:
    """The environment of ``container``'s override on the task, as ECS holds it."""
    [task] = ecs.describe_tasks(cluster=cluster, tasks=[task_arn])["tasks"]
    [override] = [o for o in task["overrides"]["containerOverrides"] if o["name"] == container]
    return {entry["name"]: entry["value"] for entry in override.get("environment") or []}


def test_the_container_overrides_carry_the_environment_of_the_shared_table(
    client: APIClient, start_agent, runtime: TaskRuntime, ecs, cluster: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = workload_env.create_agent_key(client)
    for name, value in workload_env.process_environment(key).items():
        monkeypatch.setenv(name, value)  # the agent's own environment: a task gets none of it
    flow = client.register_flow("env-table-ecs", workload_env.dump_command(sys.executable))
    run = client.create_flow_run(
        flow_id=flow["id"],
        parameters=workload_env.PARAMETERS,
        run_config={"type": "ecs", "env": workload_env.run_config_env()},
    )
    agent = start_agent(key=key, plugins=[workload_env.EnvTableHook()], **workload_env.agent_settings())
    final = wait_for_final(client, run["id"], 40)
    agent.stop()

    assert final["state"]["type"] == "Success", final["state"]
    sent = overrides_env(ecs, cluster, final["deployment"]["platform_id"])
    assert workload_env.mismatches(sent, final, key, inherits=False) == []
    seen = workload_env.parse_dump(log_messages(client, run["id"]))
    assert seen is not None, log_messages(client, run["id"])
    assert workload_env.mismatches(seen, final, key, inherits=False) == []


def test_a_null_in_the_run_config_removes_even_a_default_of_the_contract(
    client: APIClient, start_agent, runtime: TaskRuntime, ecs, cluster: str
) -> None:
    run = create_run(
        client,
        "true",
        {"type": "ecs", "env": {"PYTHONUNBUFFERED": None, "FROM_THE_AGENT": None, "KEPT": "run-config"}},
    )
    agent = start_agent(env={"FROM_THE_AGENT": "agent", "ALSO_FROM_THE_AGENT": "agent"})
    final = wait_for_final(client, run["id"], 40)
    agent.stop()

    assert final["state"]["type"] == "Success", final["state"]
    sent = overrides_env(ecs, cluster, final["deployment"]["platform_id"])
    assert "PYTHONUNBUFFERED" not in sent and "FROM_THE_AGENT" not in sent
    assert sent["ALSO_FROM_THE_AGENT"] == "agent" and sent["KEPT"] == "run-config"
    assert all(value != "None" for value in sent.values())


@pytest.mark.parametrize(
    ("agent_settings", "run_config"),
    [({"ship_output": False}, {}), ({}, {"ship_output": False})],
    ids=["agent-off", "run-config-off"],
)
def test_with_output_off_cloudwatch_is_not_read_and_only_the_agents_lines_reach_the_runs_logs(
    client: APIClient,
    start_agent,
    runtime: TaskRuntime,
    logs,
    log_group: str,
    agent_settings: dict[str, Any],
    run_config: dict[str, Any],
) -> None:
    agent = start_agent(**agent_settings)
    calls = CallCounter(plugin_state(agent.agent))
    run = create_run(client, "sh -c 'echo kept-in-cloudwatch; echo also-kept >&2'", {"type": "ecs", **run_config})
    final = wait_for_final(client, run["id"], 40)
    deployment = Deployment.from_dict(final["deployment"])
    tail = agent.agent.pm.hook.deployment_logs(
        flow_run=FlowRun.from_api(final), deployment=deployment, agent=agent.agent, tail=20
    )
    agent.stop()  # flushes the run logs

    assert final["state"]["type"] == "Success", final["state"]
    assert tail is None  # no output tail for a failed run's message either
    messages = log_messages(client, run["id"])
    assert any(m.startswith("Submitted for execution: ECS task") for m in messages), messages
    assert "kept-in-cloudwatch" not in messages and "also-kept" not in messages
    assert calls.count("GetLogEvents") == 0
    # The output is still where ECS put it.
    events = logs.get_log_events(logGroupName=log_group, logStreamName=deployment.data["log_stream"])["events"]
    assert [e["message"] for e in events] == ["kept-in-cloudwatch", "also-kept"]


@pytest.mark.parametrize(
    ("agent_env", "warned"),
    [({}, True), ({"AGENT_API_URL": "https://agent-api.internal"}, False)],
    ids=["loopback", "pointed-elsewhere"],
)
def test_an_api_on_the_agents_loopback_is_named_at_start_up_as_out_of_the_tasks_reach(
    start_agent, runtime: TaskRuntime, caplog: pytest.LogCaptureFixture, agent_env: dict[str, str], warned: bool
) -> None:
    with caplog.at_level(logging.WARNING):
        agent = start_agent(env=agent_env)
    agent.stop()

    found = [r.getMessage() for r in caplog.records if "which ECS tasks cannot reach" in r.getMessage()]
    assert bool(found) is warned, caplog.text
    if warned:
        assert agent.agent.api_url in found[0] and "--env AGENT_API_URL=URL" in found[0]
