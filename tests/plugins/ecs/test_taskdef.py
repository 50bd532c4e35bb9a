"""Task definitions by content: what goes into one, its hash, and one registration per content."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent_core.errors import DeploymentError
from agent_core.testing.harness import wait_for_final
from agent_plugin_ecs.ratelimit import RateBudget
from agent_plugin_ecs.taskdef import DefinitionInputs, build
from tests.plugins.ecs.helpers import CallCounter, create_run, plugin_state

INPUTS = DefinitionInputs(
    family="agent-etl",
    container="flow",
    run_image=None,
    agent_image="agent/default:1",
    run_task_role=None,
    agent_task_role="arn:aws:iam::1:role/agent-task",
    run_execution_role=None,
    agent_execution_role="arn:aws:iam::1:role/agent-exec",
    agent_cpu=None,
    agent_memory=None,
    launch_type="FARGATE",
    fargate=True,
    subnets_configured=False,
    log_group=None,
    log_stream_prefix="agent",
    region="us-east-1",
    stop_timeout=10,
    tags={},
)
TEMPLATE = {
    "family": "etl-template",
    "taskRoleArn": "arn:aws:iam::1:role/template-task",
    "executionRoleArn": "arn:aws:iam::1:role/template-exec",
    "cpu": 512,
    "containerDefinitions": [
        {"name": "sidecar", "image": "proxy:2"},
        {"name": "flow", "image": "template/flow:3", "environment": [{"name": "FROM_TEMPLATE", "value": "1"}]},
    ],
}


def made(base: dict[str, Any] | None = None, from_run: bool = False, **changes: Any):
    return build(base, dataclasses.replace(INPUTS, **changes), source="test", base_is_run_config=from_run)


def containers(definition) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in definition.params["containerDefinitions"]}


def test_without_a_template_the_flow_container_gets_the_agents_defaults() -> None:
    definition = made()
    assert definition.params["family"] == "agent-etl"
    assert (definition.params["cpu"], definition.params["memory"]) == ("1024", "2048")
    assert containers(definition)["flow"]["image"] == "agent/default:1"
    assert definition.params["requiresCompatibilities"] == ["FARGATE"]
    assert definition.params["networkMode"] == "awsvpc"
    assert containers(definition)["flow"]["stopTimeout"] == 10  # the cancel grace


def test_image_run_config_then_template_then_agent_on_the_flow_container_only() -> None:
    assert containers(made(TEMPLATE))["flow"]["image"] == "template/flow:3"
    run = made(TEMPLATE, run_image="run/flow:9")
    assert containers(run)["flow"]["image"] == "run/flow:9"
    assert containers(run)["sidecar"]["image"] == "proxy:2"


def test_task_role_run_config_then_definition_then_agent() -> None:
    assert made().task_role_arn == "arn:aws:iam::1:role/agent-task"
    assert made(TEMPLATE).task_role_arn == "arn:aws:iam::1:role/template-task"
    assert made(TEMPLATE, run_task_role="arn:run-task").task_role_arn == "arn:run-task"


def test_execution_role_run_config_then_agent() -> None:
    assert made(TEMPLATE).execution_role_arn == "arn:aws:iam::1:role/agent-exec"  # the agent beats its template
    assert made(TEMPLATE, agent_execution_role=None).execution_role_arn == "arn:aws:iam::1:role/template-exec"
    assert made(TEMPLATE, run_execution_role="arn:run-exec").execution_role_arn == "arn:run-exec"


def test_agent_settings_replace_the_agent_template_but_not_the_run_configs_definition() -> None:
    assert made(TEMPLATE, agent_cpu="2048").params["cpu"] == "2048"
    assert made(TEMPLATE, agent_cpu="2048", from_run=True).params["cpu"] == "512"
    assert made(TEMPLATE).params["cpu"] == "512"


def test_requires_compatibilities_follows_the_launch_type_and_is_left_out_with_capacity_providers() -> None:
    assert made(launch_type="EC2", fargate=False).params["requiresCompatibilities"] == ["EC2"]
    assert made(launch_type="EC2", fargate=False).params["networkMode"] == "bridge"
    spot = made({**TEMPLATE, "requiresCompatibilities": ["EC2"]}, launch_type=None, fargate=True)
    assert "requiresCompatibilities" not in spot.params


def test_no_agent_or_run_environment_is_baked_into_a_definition() -> None:
    definition = made(TEMPLATE)
    flow = containers(definition)["flow"]
    assert flow["environment"] == [{"name": "FROM_TEMPLATE", "value": "1"}]  # the template's own, nothing added
    assert "AGENT_FLOW_RUN_ID" not in str(definition.params)


def test_equal_content_hashes_equal_and_any_change_changes_it() -> None:
    assert made(TEMPLATE).hash == made(dict(TEMPLATE)).hash
    assert made(TEMPLATE).hash != made(TEMPLATE, run_image="other:1").hash
    assert made(TEMPLATE, tags={"team": "a"}).hash == made(TEMPLATE, tags={"team": "b"}).hash  # tags are not content


def test_awslogs_on_fargate_needs_an_execution_role_named_before_any_aws_call() -> None:
    with pytest.raises(DeploymentError) as caught:
        made(log_group="/flows", agent_execution_role=None)
    assert "needs an execution role" in str(caught.value)
    assert "execution_role_arn" in str(caught.value)
    logged = made(log_group="/flows")
    assert containers(logged)["flow"]["logConfiguration"]["options"]["awslogs-group"] == "/flows"


def test_no_image_anywhere_is_a_clear_error() -> None:
    with pytest.raises(DeploymentError, match="no image to run"):
        made(agent_image=None)


def test_the_rate_budget_spaces_registrations_after_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RateBudget(rate=2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    waits = [budget.acquire() for _ in range(4)]
    assert waits == [0.0, 0.0, 0.5, 0.5]
    assert slept == [0.5, 0.5]


# --- against moto ---------------------------------------------------------------------------------


def family_arns(ecs: Any, family: str) -> list[str]:
    return ecs.list_task_definitions(familyPrefix=family, status="ACTIVE")["taskDefinitionArns"]


def test_five_runs_of_one_flow_register_one_definition(client, start_agent, runtime, ecs) -> None:
    first = create_run(client, "echo one")
    flow = client.get_flow_run(first["id"])["flow"]["name"]
    runs = [first] + [create_run(client, "echo one", flow=flow) for _ in range(4)]
    agent = start_agent(max_workers=5)
    counter = CallCounter(plugin_state(agent.agent))
    finals = [wait_for_final(client, run["id"], 30) for run in runs]
    assert [f["state"]["type"] for f in finals] == ["Success"] * 5
    assert len(family_arns(ecs, f"agent-{flow}")) == 1
    assert counter.count("RegisterTaskDefinition") <= 1  # one, or none if it happened before the counter
    assert plugin_state(agent.agent).registry.stats.registered == 1


def test_a_restarted_agent_finds_the_definition_by_family_and_hash_tag(client, start_agent, runtime, ecs) -> None:
    run = create_run(client, "echo one")
    flow = client.get_flow_run(run["id"])["flow"]["name"]
    with_first = start_agent()
    wait_for_final(client, run["id"], 30)
    with_first.stop()
    second = start_agent()
    again = create_run(client, "echo two", flow=flow)
    assert wait_for_final(client, again["id"], 30)["state"]["type"] == "Success"
    assert len(family_arns(ecs, f"agent-{flow}")) == 1
    stats = plugin_state(second.agent).registry.stats
    assert (stats.registered, stats.reused) == (0, 1)


def test_a_changed_definition_registers_a_new_revision_and_the_old_stays_usable(
    client, start_agent, runtime, ecs
) -> None:
    run = create_run(client, "echo one")
    flow = client.get_flow_run(run["id"])["flow"]["name"]
    start_agent()
    wait_for_final(client, run["id"], 30)
    other = create_run(client, "echo one", {"type": "ecs", "image": "other/image:2"}, flow=flow)
    back = create_run(client, "echo one", flow=flow)
    for item in (other, back):
        assert wait_for_final(client, item["id"], 30)["state"]["type"] == "Success"
    arns = family_arns(ecs, f"agent-{flow}")
    assert len(arns) == 2  # the first definition was found again, not registered a third time
