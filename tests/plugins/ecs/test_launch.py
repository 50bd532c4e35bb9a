"""Launching and following tasks on moto: the call sequence, the run-task arguments, the network."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

from agent_core.errors import StartupError
from agent_core.testing.harness import AgentThread, wait_for_final
from agent_plugin_ecs import runtask
from agent_plugin_ecs.names import started_by
from agent_plugin_ecs.schemas import EcsRunConfigSchema, EcsSettingsSchema
from agent_plugin_ecs.state import state_of
from tests.plugins.ecs.helpers import CallCounter, create_run, log_messages


def task_of(ecs: Any, cluster: str, run_id: str) -> dict[str, Any]:
    arns = ecs.list_tasks(cluster=cluster)["taskArns"]
    tasks = ecs.describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])["tasks"] if arns else []
    mine = [t for t in tasks if {"key": "agent.flow_run_id", "value": run_id} in t.get("tags", [])]
    assert len(mine) == 1, mine
    return mine[0]


def test_the_whole_call_sequence_of_one_run(server, client, backend_settings, runtime, ecs, cluster) -> None:
    thread = AgentThread(
        server.url, "ecs", name="ecs-sequence", backend_settings={**backend_settings, "tags": "team=data"}
    )
    thread.agent.load_backend_contract()
    counter = CallCounter(state_of(thread.agent))
    run = create_run(client, "sh -c 'echo hello from the task'")
    with thread:
        final = wait_for_final(client, run["id"], 30)
        polls = thread.agent.polls
    assert final["state"]["type"] == "Success", final["state"]
    ops = counter.operations()
    # Start-up: the default VPC for Fargate, then the preflight checks.
    assert ops[:3] == ["DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups"]
    assert {"GetCallerIdentity", "DescribeClusters", "DescribeLogGroups"} <= set(ops)
    # Deploy: the family has no definition yet, so one is registered; then one task.
    deploy = [op for op in ops if op in ("DescribeTaskDefinition", "RegisterTaskDefinition", "RunTask")]
    assert deploy == ["DescribeTaskDefinition", "RegisterTaskDefinition", "RunTask"]
    # Follow: describe_tasks, the output from CloudWatch; nothing is ever deregistered.
    assert counter.count("DescribeTasks") >= 1 and counter.count("GetLogEvents") >= 1
    assert "DeregisterTaskDefinition" not in ops and polls >= 1
    assert "hello from the task" in log_messages(client, run["id"])

    task = task_of(ecs, cluster, run["id"])
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags["agent.attempt"] == "1" and tags["agent.agent_name"] == "ecs-sequence" and tags["team"] == "data"
    assert tags["agent.flow_name"] == final["flow"]["name"]
    assert task["startedBy"] == started_by("ecs-sequence") == "agent/ecs-sequence"
    assert task["launchType"] == "FARGATE"
    flow = next(o for o in task["overrides"]["containerOverrides"] if o["name"] == "flow")
    assert flow["command"] == ["/bin/sh", "-c", "sh -c 'echo hello from the task'"]
    env = {e["name"]: e["value"] for e in flow["environment"]}
    assert env["AGENT_FLOW_RUN_ID"] == run["id"] and env["PYTHONUNBUFFERED"] == "1"
    # Default-VPC inference: the task's ENI is in one of the default VPC's subnets.
    subnet = next(d["value"] for d in task["attachments"][0]["details"] if d["name"] == "subnetId")
    assert subnet in state_of(thread.agent).default_network().subnets
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])["taskDefinition"]
    assert "AGENT_FLOW_RUN_ID" not in str(definition)  # env travels in the overrides only


def test_one_describe_tasks_per_monitor_tick_for_every_run(server, client, backend_settings, runtime) -> None:
    thread = AgentThread(server.url, "ecs", backend_settings=backend_settings, monitor_interval=0.3, max_workers=6)
    thread.agent.load_backend_contract()
    st = state_of(thread.agent)
    counter = CallCounter(st)
    runs = [create_run(client, "sh -c 'sleep 2'") for _ in range(6)]
    with thread:
        finals = [wait_for_final(client, run["id"], 40) for run in runs]
    assert [f["state"]["type"] for f in finals] == ["Success"] * 6
    # Six runs followed for a few seconds at 0.3 s a tick: far fewer describes than one per run per tick.
    describes = counter.count("DescribeTasks")
    assert st.tracker.describe_calls == describes
    assert describes <= st.tracker.generation + 1
    assert describes < 6 * 4


def test_run_task_arguments_by_precedence_template_settings_run_config(tmp_path: Path) -> None:
    template = {
        "cluster": "from-template",
        "launchType": "EC2",
        "tags": [{"key": "from", "value": "template"}, {"key": "shared", "value": "template"}],
        "overrides": {
            "containerOverrides": [
                {"name": "flow", "environment": [{"name": "TEMPLATE_ONLY", "value": "1"}]},
                {"name": "sidecar", "command": ["proxy"]},
            ]
        },
        "platformVersion": "1.3.0",
    }
    settings = EcsSettingsSchema().load(
        {"cluster": "from-settings", "capacity_provider_strategy": "FARGATE_SPOT:1", "tags": "shared=settings"}
    )
    run_config = EcsRunConfigSchema().load(
        {
            "cpu": 2048,
            "run_task_kwargs": {
                "platformVersion": "1.4.0",
                "tags": [{"key": "run", "value": "yes"}],
                "overrides": {"containerOverrides": [{"name": "flow", "environment": [{"name": "RUN", "value": "1"}]}]},
            },
        }
    )
    kwargs = runtask.resolve(settings, template, run_config)
    assert kwargs["cluster"] == "from-settings"
    assert kwargs["capacityProviderStrategy"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    assert "launchType" not in kwargs  # the later source's strategy replaced the template's launch type
    assert kwargs["platformVersion"] == "1.4.0"
    assert {t["key"]: t["value"] for t in kwargs["tags"]} == {"from": "template", "shared": "settings", "run": "yes"}
    containers = kwargs["overrides"]["containerOverrides"]
    assert [c["name"] for c in containers] == ["flow", "sidecar"]  # merged by name, others appended
    assert containers[0]["environment"] == [{"name": "RUN", "value": "1"}]  # the run config's replaced the key
    assert kwargs["overrides"]["cpu"] == "2048"  # a string, as ECS wants

    fargate = runtask.resolve(settings, template, EcsRunConfigSchema().load({"launch_type": "FARGATE"}))
    assert fargate["launchType"] == "FARGATE" and "capacityProviderStrategy" not in fargate
    nothing = runtask.resolve(EcsSettingsSchema().load({}), None, EcsRunConfigSchema().load({}))
    assert nothing == {"launchType": "FARGATE", "overrides": {}}  # FARGATE by default, no cluster


def test_precedence_reaches_the_task_on_moto(client, start_agent, runtime, ecs, cluster, tmp_path) -> None:
    template = tmp_path / "run-task.json"
    template.write_text('{"tags": [{"key": "from", "value": "template"}], "launchType": "EC2"}')
    start_agent(backend={"run_task_template": str(template), "launch_type": "FARGATE"})
    run = create_run(client, "echo hi", {"type": "ecs", "env": {"FROM_RUN": "yes"}, "memory": "4096"})
    assert wait_for_final(client, run["id"], 30)["state"]["type"] == "Success"
    task = task_of(ecs, cluster, run["id"])
    assert task["launchType"] == "FARGATE"
    assert {"key": "from", "value": "template"} in task["tags"]
    assert task["overrides"]["memory"] == "4096"
    flow = next(o for o in task["overrides"]["containerOverrides"] if o["name"] == "flow")
    assert {"name": "FROM_RUN", "value": "yes"} in flow["environment"]


def test_configured_subnets_are_used_and_nothing_is_inferred(
    server, client, backend_settings, runtime, ecs, cluster
) -> None:
    ec2 = boto3.client("ec2")
    # In the default VPC: moto fails (HTTP 500) on an ENI in a VPC of its own making.
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
    subnet = sorted(s["SubnetId"] for s in subnets)[-1]
    group = ec2.create_security_group(GroupName=f"g-{uuid.uuid4().hex[:6]}", Description="t", VpcId=vpc)["GroupId"]
    settings = {**backend_settings, "subnets": subnet, "security_groups": group}
    thread = AgentThread(server.url, "ecs", backend_settings=settings)
    thread.agent.load_backend_contract()
    counter = CallCounter(state_of(thread.agent))
    run = create_run(client, "echo hi")
    with thread:
        assert wait_for_final(client, run["id"], 30)["state"]["type"] == "Success"
    assert "DescribeVpcs" not in counter.operations()
    task = task_of(ecs, cluster, run["id"])
    assert {"name": "subnetId", "value": subnet} in task["attachments"][0]["details"]


def test_fargate_without_subnets_and_without_a_default_vpc_is_a_startup_error(server, backend_settings) -> None:
    region = "ap-southeast-2"  # a region no other test uses: its default VPC goes
    ec2 = boto3.client("ec2", region_name=region)
    for vpc in ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]:
        for subnet in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]}])["Subnets"]:
            ec2.delete_subnet(SubnetId=subnet["SubnetId"])
        ec2.delete_vpc(VpcId=vpc["VpcId"])
    thread = AgentThread(server.url, "ecs", backend_settings={**backend_settings, "region": region})
    with pytest.raises(StartupError) as caught:
        thread.start()
    assert "no default VPC in ap-southeast-2" in str(caught.value)
    assert "set subnets" in str(caught.value)
    thread.stop()
