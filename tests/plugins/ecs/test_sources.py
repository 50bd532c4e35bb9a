"""Where definitions and templates come from (files, S3, the run config), and how the clients retry."""

from __future__ import annotations

import json
import uuid

import boto3
import pytest

from agent_core.testing.harness import AgentThread, wait_for_final, wait_for_state
from agent_plugin_ecs.aws import AwsClients
from agent_plugin_ecs.schemas import EcsSettingsSchema
from tests.plugins.ecs.conftest import TEMPLATE
from tests.plugins.ecs.helpers import create_run


@pytest.fixture
def bucket(aws: str) -> str:
    name = f"agent-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def test_a_task_definition_template_on_s3_is_used(client, start_agent, runtime, ecs, bucket) -> None:
    boto3.client("s3").put_object(Bucket=bucket, Key="agent/td.yaml", Body=f"family: from-s3-{bucket}\n{TEMPLATE}")
    start_agent(backend={"task_definition_template": f"s3://{bucket}/agent/td.yaml"})
    run = create_run(client, "echo from-s3")
    final = wait_for_final(client, run["id"], 30)
    assert final["state"]["type"] == "Success"
    assert final["deployment"]["data"]["task_definition"].rsplit("/", 1)[-1] == f"from-s3-{bucket}:1"


def test_a_missing_s3_template_is_a_startup_error_naming_it(server, backend_settings, bucket) -> None:
    location = f"s3://{bucket}/absent.yaml"
    thread = AgentThread(server.url, "ecs", backend_settings={**backend_settings, "run_task_template": location})
    with pytest.raises(Exception) as caught:
        thread.start()
    thread.stop()
    assert f"run_task_template: cannot read {location}: NoSuchKey" in str(caught.value)


def test_a_run_configs_definition_file_replaces_the_template(client, start_agent, runtime, ecs, tmp_path) -> None:
    family = f"etl-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "etl.json"
    definition = {
        "family": family,
        "cpu": 512,
        "memory": 1024,
        "containerDefinitions": [{"name": "flow", "memoryReservation": 64}],
    }
    path.write_text(json.dumps(definition))
    start_agent()
    run = create_run(client, "echo mine", {"type": "ecs", "task_definition_path": str(path)})
    assert wait_for_final(client, run["id"], 30)["state"]["type"] == "Success"
    definition = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
    assert (definition["cpu"], definition["memory"]) == ("512", "1024")
    bad = create_run(client, "echo mine", {"type": "ecs", "task_definition_path": str(tmp_path / "nope.json")})
    failed = wait_for_final(client, bad["id"], 30)
    assert failed["state"]["message"] == f"task_definition_path: {tmp_path / 'nope.json'} does not exist"


def test_cancel_stops_the_task_with_a_reason_naming_the_agent(client, start_agent, runtime, ecs, cluster) -> None:
    run = create_run(client, "sleep 60")
    start_agent(name="ecs-canceller")
    running = wait_for_state(client, run["id"], ["Running"], 30)
    client.cancel_flow_run(run["id"])
    assert wait_for_final(client, run["id"], 15)["state"]["type"] == "Cancelled"
    task = ecs.describe_tasks(cluster=cluster, tasks=[running["deployment"]["platform_id"]])["tasks"][0]
    assert task["lastStatus"] == "STOPPED"
    assert task["stoppedReason"] == f"Cancelled through agent ecs-canceller (flow run {run['id']})"


def test_clients_retry_adaptively_unless_aws_retry_mode_is_set(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    settings = EcsSettingsSchema().load({})
    assert AwsClients(settings).client("ecs").meta.config.retries["mode"] == "adaptive"
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    assert AwsClients(settings).client("ecs").meta.config.retries["mode"] == "standard"
