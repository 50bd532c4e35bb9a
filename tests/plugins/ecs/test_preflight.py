"""Preflight (``agent doctor``, start-up, readiness): each failure names the setting; cheap; never raises."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from agent_core import CheckResult
from agent_core.testing.harness import AgentThread
from agent_plugin_ecs.state import state_of
from tests.plugins.ecs.helpers import CallCounter


def loaded(server, settings: dict[str, Any]) -> Any:
    thread = AgentThread(server.url, "ecs", backend_settings=settings)
    thread.agent.load_backend_contract()
    return thread.agent


def results(agent: Any) -> dict[str, CheckResult]:
    return {r.name: r for r in agent.preflight()}


def test_every_check_passes_on_a_good_configuration(server, backend_settings) -> None:
    found = results(loaded(server, backend_settings))
    assert set(found) == {
        "AWS credentials", "ECS cluster", "task_definition_template", "network", "execution role",
        "CloudWatch log group",
    }  # fmt: skip
    assert all(r.ok for r in found.values()), found
    assert found["AWS credentials"].detail.startswith("account 123456789012")
    assert "ACTIVE" in found["ECS cluster"].detail
    assert found["network"].detail.startswith("default VPC vpc-")


def test_results_are_kept_so_readiness_rounds_are_cheap(server, backend_settings) -> None:
    agent = loaded(server, backend_settings)
    first = agent.preflight()
    counter = CallCounter(state_of(agent))
    for _ in range(5):
        assert agent.preflight() == first
    assert counter.calls == []


@pytest.mark.parametrize(
    ("change", "name", "seen", "fix"),
    [
        ({"cluster": "no-such-cluster"}, "ECS cluster", "cluster 'no-such-cluster'", "--set cluster=NAME"),
        ({"cluster": "no-such-cluster"}, "ECS cluster", "MISSING", "aws ecs create-cluster --cluster-name no-such"),
        ({"subnets": "subnet-00000000deadbeef0"}, "network", "subnet-00000000deadbeef0", "--set subnets="),
        ({"execution_role_arn": None}, "execution role", "needs one", "--set execution_role_arn=arn:aws:iam::"),
        ({"log_group": "/agent-test/absent"}, "CloudWatch log group", "'/agent-test/absent' does not exist",
         "aws logs create-log-group --log-group-name /agent-test/absent"),
    ],
)  # fmt: skip
def test_a_failure_says_what_was_seen_and_how_to_fix_it(server, backend_settings, change, name, seen, fix) -> None:
    found = results(loaded(server, {**backend_settings, **change}))
    assert not found[name].ok
    assert seen in found[name].detail
    assert fix in found[name].fix


def test_a_missing_security_group_is_named(server, backend_settings) -> None:
    ec2 = boto3.client("ec2")
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    subnet = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"][0]["SubnetId"]
    found = results(loaded(server, {**backend_settings, "subnets": subnet, "security_groups": "sg-0000000000dead0"}))
    assert not found["network"].ok
    assert "sg-0000000000dead0" in found["network"].detail
    assert "--set security_groups=" in found["network"].fix


def test_an_invalid_template_names_the_file_and_the_setting(server, backend_settings, tmp_path: Path) -> None:
    bad = tmp_path / "td.yaml"
    bad.write_text("containerDefinitions:\n  - name: flow\n    memory: lots\n")
    found = results(loaded(server, {**backend_settings, "task_definition_template": str(bad)}))
    check = found["task_definition_template"]
    assert not check.ok
    assert str(bad) in check.detail and "containerDefinitions[0].memory" in check.detail
    assert "--set task_definition_template=PATH" in check.fix
    missing = results(loaded(server, {**backend_settings, "run_task_template": str(tmp_path / "absent.json")}))
    assert missing["run_task_template"].detail == f"run_task_template: {tmp_path / 'absent.json'} does not exist"


def test_an_unreadable_template_is_a_startup_error_naming_the_file(server, backend_settings, tmp_path: Path) -> None:
    bad = tmp_path / "rt.json"
    bad.write_text("{not json")
    thread = AgentThread(server.url, "ecs", backend_settings={**backend_settings, "run_task_template": str(bad)})
    with pytest.raises(Exception) as caught:
        thread.start()
    thread.stop()
    assert f"run_task_template: {bad} is not valid JSON" in str(caught.value)


def test_unreachable_aws_fails_the_checks_without_raising(server, backend_settings) -> None:
    agent = loaded(server, {**backend_settings, "endpoint_url": "http://127.0.0.1:9"})
    state_of(agent).clients.client("sts").meta.config.retries["total_max_attempts"] = 1
    found = results(agent)
    assert not found["AWS credentials"].ok and not found["ECS cluster"].ok
    assert "Could not connect to the endpoint URL" in found["AWS credentials"].detail
    assert "--set endpoint_url=URL" in found["AWS credentials"].fix and found["ECS cluster"].fix


def test_agent_doctor_prints_each_ecs_failure_with_its_fix(server, backend_settings, tmp_path: Path) -> None:
    settings = {**backend_settings, "cluster": "no-such-cluster", "log_group": "/agent-test/absent"}
    command = [sys.executable, "-m", "agent_core.cli.main", "--api", server.url, "doctor", "--backend", "ecs"]
    for key, value in settings.items():
        command += ["--set", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env["AGENT_HOME"] = str(tmp_path / "home")
    done = subprocess.run([*command, "-o", "json"], env=env, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 1, done.stdout + done.stderr
    failed = {check["name"]: check for check in json.loads(done.stdout) if not check["ok"]}
    assert set(failed) == {"ECS cluster", "CloudWatch log group"}, failed
    assert "aws ecs create-cluster --cluster-name no-such-cluster" in failed["ECS cluster"]["fix"]
    assert "aws logs create-log-group --log-group-name /agent-test/absent" in failed["CloudWatch log group"]["fix"]
