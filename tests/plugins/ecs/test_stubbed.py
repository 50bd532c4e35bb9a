"""What moto cannot produce, against AWS's documented answers (botocore's Stubber).

Non-zero exit codes, stop codes and the transient stop reasons, tasks ECS reports MISSING,
run_task ``failures`` and throttling. The agent, its plugin manager and the hooks are real;
only the ECS and CloudWatch Logs clients answer from the Stubber. The answers follow the
shapes of the ECS API reference (DescribeTasks, RunTask, Failure) and are validated by the
Stubber against botocore's model.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from agent_core import Deployment, DeploymentStatus, FlowRun
from agent_core.client import APIClient
from agent_core.errors import DeploymentError
from agent_core.testing.harness import AgentThread
from agent_plugin_ecs.state import EcsState, state_of
from tests.plugins.ecs.helpers import create_run, log_messages

REGION = "us-east-1"
ACCOUNT = "123456789012"
CLUSTER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"
TASK_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task/prod/1dc5c17a422548178f8e4a0c2b9b4fd1"
DEFINITION_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/agent-etl:3"
WHEN = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.UTC)


@pytest.fixture
def agent(sqlite_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real, loaded (not started) ecs agent; its AWS clients are stubbed by the tests."""
    for name, value in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    thread = AgentThread(
        sqlite_server.url,
        "ecs",
        name="stubbed",
        backend_settings={
            "cluster": "prod",
            "image": "etl:1",
            "state_dir": str(tmp_path / "state"),
            "start_timeout": 30,
        },
    )
    thread.agent.load_backend_contract()
    yield thread.agent
    thread.client.close()


@pytest.fixture
def st(agent: Any) -> EcsState:
    found = state_of(agent)
    now = [1000.0]
    found.clock = lambda: now[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found.sleep = sleep
    return found


def stub(st: EcsState, service: str) -> Iterator[Stubber]:
    made = boto3.client(service, region_name=REGION)
    stubber = Stubber(made)
    st.clients.use(service, made)
    with stubber:
        yield stubber
    stubber.assert_no_pending_responses()


@pytest.fixture
def ecs(st: EcsState) -> Iterator[Stubber]:
    yield from stub(st, "ecs")


@pytest.fixture
def logs(st: EcsState) -> Iterator[Stubber]:
    yield from stub(st, "logs")


@pytest.fixture
def run(sqlite_api: APIClient) -> FlowRun:
    return FlowRun.from_api(create_run(sqlite_api, "python -m etl", flow="etl"))


def deployment(run: FlowRun, **data: Any) -> Deployment:
    return Deployment(
        "ecs",
        TASK_ARN,
        data={"cluster": "prod", "key": run.key, "container": "flow", "launched_at": time.time() - 600, **data},
    )


def stopped_task(**fields: Any) -> dict[str, Any]:
    """A STOPPED task as DescribeTasks returns it."""
    container = {
        "containerArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container/prod/1dc5c17a/0f8b7a2c",
        "taskArn": TASK_ARN,
        "name": "flow",
        "lastStatus": "STOPPED",
        **fields.pop("container", {}),
    }
    return {
        "taskArn": TASK_ARN,
        "clusterArn": CLUSTER_ARN,
        "taskDefinitionArn": DEFINITION_ARN,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "launchType": "FARGATE",
        "createdAt": WHEN,
        "stoppedAt": WHEN,
        "containers": [container],
        **fields,
    }


def check(agent: Any, run: FlowRun, dep: Deployment) -> DeploymentStatus:
    return agent.pm.hook.check_deployment(flow_run=run, deployment=dep, agent=agent)


def described(ecs: Stubber, answer: dict[str, Any]) -> None:
    ecs.add_response("describe_tasks", {"failures": [], **answer}, {"cluster": "prod", "tasks": [TASK_ARN]})


def follow(agent: Any, run: FlowRun, ecs: Stubber, answer: dict[str, Any]) -> DeploymentStatus:
    """The first check only watches the task; the next one describes it."""
    dep = deployment(run)
    assert check(agent, run, dep).kind == "pending"
    described(ecs, answer)
    return check(agent, run, dep)


# --- following ---------------------------------------------------------------------------------


def test_a_non_zero_exit_code_is_the_runs_exit_code(agent, run, ecs) -> None:
    status = follow(
        agent,
        run,
        ecs,
        {
            "tasks": [
                stopped_task(
                    stopCode="EssentialContainerExited",
                    stoppedReason="Essential container in task exited",
                    container={"exitCode": 3},
                )
            ]
        },
    )
    assert (status.kind, status.exit_code) == ("exited", 3)
    assert "stop code EssentialContainerExited" in status.reason
    assert "Essential container in task exited" in status.reason


def test_an_oom_kill_names_the_containers_reason(agent, run, ecs) -> None:
    status = follow(
        agent,
        run,
        ecs,
        {
            "tasks": [
                stopped_task(
                    stopCode="EssentialContainerExited",
                    stoppedReason="Essential container in task exited",
                    container={"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
                )
            ]
        },
    )
    assert status.exit_code == 137
    assert "container flow: OutOfMemoryError: Container killed due to memory usage" in status.reason


@pytest.mark.parametrize(
    ("stop_code", "stopped_reason", "transient"),
    [
        (
            "TaskFailedToStart",
            "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
            "registry.example/etl:1: failed to do request: dial tcp: i/o timeout",
            "image pull failed",
        ),
        ("TaskFailedToStart", "Timeout waiting for network interface provisioning to complete.", "ENI attachment"),
        ("SpotInterruption", "Your Spot Task was interrupted.", "spot interruption"),
        ("TaskFailedToStart", "CannotPullContainerError: pull access denied for etl, repository does not exist", None),
    ],
)
def test_stop_codes_and_transient_stop_reasons_are_named(agent, run, ecs, stop_code, stopped_reason, transient) -> None:
    status = follow(agent, run, ecs, {"tasks": [stopped_task(stopCode=stop_code, stoppedReason=stopped_reason)]})
    assert status.kind == "exited"
    assert f"stop code {stop_code}" in status.reason
    assert stopped_reason in status.reason
    if transient:
        assert f"transient ({transient}" in status.reason
        assert "a retry may succeed" in status.reason
    else:
        assert "transient" not in status.reason
    if stop_code == "TaskFailedToStart":
        assert status.exit_code == -1
        assert "reported no exit code" in status.reason


def test_a_task_ecs_reports_missing_is_missing(agent, run, ecs) -> None:
    dep = deployment(run)
    check(agent, run, dep)
    described(ecs, {"tasks": [stopped_task(lastStatus="RUNNING", desiredStatus="RUNNING", stoppedAt=WHEN)]})
    assert check(agent, run, dep).kind == "running"
    described(ecs, {"tasks": [], "failures": [{"arn": TASK_ARN, "reason": "MISSING"}]})
    status = check(agent, run, dep)
    assert status.kind == "missing"
    assert "ECS no longer knows task 1dc5c17a422548178f8e4a0c2b9b4fd1 (MISSING)" in status.reason


def test_a_task_not_yet_known_right_after_its_launch_is_pending(agent, run, ecs) -> None:
    dep = deployment(run, launched_at=time.time())
    check(agent, run, dep)
    described(ecs, {"tasks": [], "failures": [{"arn": TASK_ARN, "reason": "MISSING"}]})
    assert check(agent, run, dep).kind == "pending"


@pytest.mark.parametrize("status", ["PROVISIONING", "PENDING", "ACTIVATING"])
def test_provisioning_and_pending_tasks_are_pending(agent, run, ecs, status) -> None:
    answer = {"tasks": [stopped_task(lastStatus=status, desiredStatus="RUNNING")]}
    assert follow(agent, run, ecs, answer).kind == "pending"


def test_one_describe_serves_every_run_of_a_tick(agent, sqlite_api, ecs, st) -> None:
    runs = [FlowRun.from_api(create_run(sqlite_api, "echo", flow="etl")) for _ in range(3)]
    arns = [f"{TASK_ARN[:-4]}{n:04d}" for n in range(3)]
    deps = [
        Deployment("ecs", arn, data={"cluster": "prod", "key": r.key, "container": "flow"})
        for r, arn in zip(runs, arns, strict=True)
    ]
    for r, d in zip(runs, deps, strict=True):
        assert check(agent, r, d).kind == "pending"
    running = [dict(stopped_task(lastStatus="RUNNING", desiredStatus="RUNNING"), taskArn=arn) for arn in arns]
    for _ in range(2):  # two ticks: one call each, for all three runs
        ecs.add_response("describe_tasks", {"tasks": running, "failures": []}, {"cluster": "prod", "tasks": arns})
        assert [check(agent, r, d).kind for r, d in zip(runs, deps, strict=True)] == ["running"] * 3
    assert st.tracker.describe_calls == 2


# --- launching ---------------------------------------------------------------------------------


def registered(ecs: Stubber) -> None:
    ecs.add_client_error("describe_task_definition", "ClientException", "Unable to describe task definition.")
    ecs.add_response("register_task_definition", {"taskDefinition": {"taskDefinitionArn": DEFINITION_ARN}})


def run_task_answer() -> dict[str, Any]:
    return {"tasks": [stopped_task(lastStatus="PROVISIONING", desiredStatus="RUNNING", stoppedAt=WHEN)], "failures": []}


def deploy(agent: Any, run: FlowRun, run_config: dict[str, Any] | None = None) -> Deployment:
    rc = agent.run_config_schema.load(run_config or {"launch_type": "EC2"})
    return agent.pm.hook.deploy_flow(flow_run=run, run_config=rc, agent=agent)


def test_run_task_on_ec2_sends_the_token_started_by_and_tags_and_infers_no_network(agent, run, ecs) -> None:
    registered(ecs)
    env = {**agent.flow_run_env(run, {}), "PYTHONUNBUFFERED": "1"}
    expected = {
        "cluster": "prod",
        "launchType": "EC2",
        "taskDefinition": DEFINITION_ARN,
        "count": 1,
        "startedBy": "agent/stubbed",
        "clientToken": f"{run.id}-1",
        "tags": [
            {"key": "agent.backend", "value": "ecs"},
            {"key": "agent.flow_run_id", "value": run.id},
            {"key": "agent.attempt", "value": "1"},
            {"key": "agent.agent_name", "value": "stubbed"},
            {"key": "agent.flow_name", "value": "etl"},
        ],
        "overrides": {
            "containerOverrides": [
                {
                    "name": "flow",
                    "command": ["/bin/sh", "-c", "python -m etl"],
                    "environment": [{"name": k, "value": v} for k, v in env.items()],
                }
            ]
        },
    }
    ecs.add_response("run_task", run_task_answer(), expected)  # no networkConfiguration: bridge on EC2
    dep = deploy(agent, run)
    assert dep.platform_id == TASK_ARN
    assert dep.data["cluster"] == "prod" and dep.data["key"] == run.key


def test_transient_failures_and_throttling_are_retried_within_the_start_timeout(agent, run, ecs, st) -> None:
    registered(ecs)
    ecs.add_client_error("run_task", "ThrottlingException", "Rate exceeded", http_status_code=400)
    ecs.add_response(
        "run_task",
        {
            "tasks": [],
            "failures": [
                {"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/prod/abc", "reason": "RESOURCE:MEMORY"}
            ],
        },
    )
    ecs.add_response("run_task", run_task_answer())
    started = st.clock()
    assert deploy(agent, run).platform_id == TASK_ARN
    assert st.clock() - started == 3.0  # waited 1 s, then 2 s


def test_a_lasting_failure_fails_the_run_with_awss_reason(agent, run, ecs) -> None:
    registered(ecs)
    ecs.add_response("run_task", {"tasks": [], "failures": [{"arn": CLUSTER_ARN, "reason": "MISSING"}]})
    with pytest.raises(DeploymentError) as caught:
        deploy(agent, run)
    assert str(caught.value) == f"ECS could not start the task: MISSING {CLUSTER_ARN}"


def test_transient_failures_past_the_start_timeout_fail_the_run(agent, run, ecs, st) -> None:
    registered(ecs)
    reason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
    failure = {"tasks": [], "failures": [{"reason": reason}]}
    for _ in range(6):  # waits of 1 + 2 + 4 + 8 + 15 s fit in 30 s; a seventh try would not
        ecs.add_response("run_task", failure)
    with pytest.raises(DeploymentError) as caught:
        deploy(agent, run)
    assert "within the start timeout of 30s (6 attempt(s))" in str(caught.value)
    assert "Capacity is unavailable" in str(caught.value)


def test_a_repeated_launch_of_an_attempt_returns_the_first_task(agent, run, ecs) -> None:
    registered(ecs)
    ecs.add_client_error(
        "run_task",
        "ConflictException",
        "The RunTask request could not be processed due to conflicts. The provided clientToken is already in use "
        "with a different RunTask request. The resourceIds are the existing task ARNs which are already associated "
        "with the clientToken.",
        modeled_fields={"resourceIds": [TASK_ARN]},
    )
    assert deploy(agent, run).platform_id == TASK_ARN


def test_an_unknown_cluster_names_the_setting(agent, run, ecs) -> None:
    registered(ecs)
    ecs.add_client_error("run_task", "ClusterNotFoundException", "Cluster not found.")
    with pytest.raises(DeploymentError, match="cluster 'prod' does not exist: set the cluster setting"):
        deploy(agent, run)


def test_an_existing_definition_is_described_for_its_roles_not_registered(agent, run, ecs) -> None:
    ecs.add_response(
        "describe_task_definition",
        {
            "taskDefinition": {
                "taskDefinitionArn": DEFINITION_ARN,
                "family": "agent-etl",
                "networkMode": "bridge",
                "taskRoleArn": "arn:aws:iam::123456789012:role/definition-task",
                "containerDefinitions": [{"name": "flow", "image": "etl:1"}],
            },
            "tags": [],
        },
        {"taskDefinition": "agent-etl:3", "include": ["TAGS"]},
    )
    ecs.add_response("run_task", run_task_answer(), {**_any_run_task(), "taskDefinition": DEFINITION_ARN})
    deploy(agent, run, {"launch_type": "EC2", "task_definition_arn": "agent-etl:3"})


def _any_run_task() -> dict[str, Any]:
    return {key: ANY for key in ("cluster", "launchType", "count", "startedBy", "clientToken", "tags", "overrides")}


# --- output ------------------------------------------------------------------------------------


def test_a_missing_log_group_is_a_clear_message_not_a_crash(agent, run, ecs, logs, sqlite_api) -> None:
    dep = deployment(run, log_group="/flows", log_stream="agent/flow/1dc5c17a422548178f8e4a0c2b9b4fd1")
    check(agent, run, dep)
    described(ecs, {"tasks": [stopped_task(lastStatus="RUNNING", desiredStatus="RUNNING")]})
    logs.add_client_error("get_log_events", "ResourceNotFoundException", "The specified log group does not exist.")
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": "/flows"})
    assert check(agent, run, dep).kind == "running"
    logs.add_client_error("get_log_events", "ResourceNotFoundException", "The specified log group does not exist.")
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": "/flows"})
    lines = agent.pm.hook.deployment_logs(flow_run=run, deployment=dep, agent=agent, tail=20)
    assert lines is None
    agent.run_logs.stop(time.monotonic() + 10)  # never started: sends what was written
    messages = log_messages(sqlite_api, run.id)
    assert "Cannot ship the task's output: CloudWatch log group '/flows' does not exist" in messages[0]
    assert messages[1] == "No output to attach: CloudWatch log group '/flows' does not exist"
