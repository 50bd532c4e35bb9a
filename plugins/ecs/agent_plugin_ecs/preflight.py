"""The backend's preflight checks (``agent doctor``, start-up, readiness every ``readiness_interval``).

Cheap and never raising: each check is one small call at most, and its result is kept for a
while (longer when it passed, and for what rarely changes: the network, the credentials),
so readiness does not call AWS every round. Each failure says what was seen (``detail``) and
how to fix it (``fix``: the setting, or the AWS command), which ``agent doctor`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import botocore.exceptions

from agent_core import CheckResult
from agent_plugin_ecs.aws import NO_CREDENTIALS, UNREACHABLE, explain
from agent_plugin_ecs.network import NoDefaultVpc
from agent_plugin_ecs.runtask import placement_of, resolve, subnets_of
from agent_plugin_ecs.schemas import EcsRunConfig
from agent_plugin_ecs.state import EcsState
from agent_plugin_ecs.taskdef import needs_execution_role

# Seconds a result is kept: (when it passed, when it failed).
KEEP = {
    "AWS credentials": (300.0, 10.0),
    "ECS cluster": (30.0, 10.0),
    "network": (600.0, 10.0),
    "CloudWatch log group": (300.0, 10.0),
}

REACH_FIX = (
    "check the network to AWS and the region (--set region=NAME); for a stand-in such as moto, --set endpoint_url=URL"
)
CREDENTIALS_FIX = (
    "give the agent AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "
    "(--set profile=NAME), or an instance or task role"
)
SUBNETS_FIX = "--set subnets=subnet-a,subnet-b (existing subnets of the cluster's VPC)"
EXECUTION_ROLE_FIX = (
    "--set execution_role_arn=arn:aws:iam::ACCOUNT:role/ecsTaskExecutionRole "
    "(a role with the AmazonECSTaskExecutionRolePolicy)"
)
# How to fix a check that raised, by check name (AWS answered with an error).
ERROR_FIXES = {
    "AWS credentials": CREDENTIALS_FIX,
    "ECS cluster": "check the cluster setting and the ecs:DescribeClusters permission",
    "network": SUBNETS_FIX,
    "execution role": EXECUTION_ROLE_FIX,
    "CloudWatch log group": "check the log_group setting and the logs:DescribeLogGroups permission",
}


def fix_for(name: str, exc: BaseException) -> str:
    """How to fix the check ``name`` that failed with ``exc`` (or with what ``exc`` wraps)."""
    for found in (exc, exc.__cause__, exc.__context__):
        if isinstance(found, UNREACHABLE):
            return REACH_FIX
        if isinstance(found, NO_CREDENTIALS):
            return CREDENTIALS_FIX
    return ERROR_FIXES.get(name, "see the ecs backend's settings (docs/backends/ecs.md)")


def _kept(st: EcsState, name: str, check: Callable[[], CheckResult]) -> CheckResult:
    now = st.clock()
    found = st.checks.get(name)
    if found is not None:
        at, result = found
        ok_for, failed_for = KEEP.get(name, (float("inf"), 10.0))
        if now - at < (ok_for if result.ok else failed_for):
            return result
    try:
        result = check()
    except NoDefaultVpc as exc:
        result = CheckResult(name, False, str(exc), fix=SUBNETS_FIX)
    except Exception as exc:
        result = CheckResult(name, False, explain(exc), fix=fix_for(name, exc))
    st.checks[name] = (now, result)
    return result


def checks(st: EcsState, agent: Any) -> list[CheckResult]:
    results = [
        _kept(st, "AWS credentials", lambda: _credentials(st)),
        _kept(st, "ECS cluster", lambda: _cluster(st)),
    ]
    template_results = _templates(st)
    results += template_results
    if all(r.ok for r in template_results):
        results.append(_kept(st, "network", lambda: _network(st)))
        results.append(_kept(st, "execution role", lambda: _execution_role(st)))
    if st.settings.log_group:
        results.append(_kept(st, "CloudWatch log group", lambda: _log_group(st)))
    return results


def _credentials(st: EcsState) -> CheckResult:
    identity = st.clients.sts.get_caller_identity()
    return CheckResult("AWS credentials", True, f"account {identity.get('Account', '?')} as {identity.get('Arn', '?')}")


def _cluster(st: EcsState) -> CheckResult:
    name = st.settings.cluster or "default"
    answer = st.clients.ecs.describe_clusters(clusters=[name])
    clusters = answer.get("clusters") or []
    where = f"in region {st.clients.region}" if st.clients.region else ""
    if not clusters:
        reasons = ", ".join(f.get("reason", "?") for f in answer.get("failures") or []) or "MISSING"
        setting = "fix the cluster setting" if st.settings.cluster else "set the cluster setting"
        return CheckResult(
            "ECS cluster",
            False,
            f"cluster {name!r} {where}: {reasons}",
            fix=f"create it (aws ecs create-cluster --cluster-name {name}), or {setting}: --set cluster=NAME",
        )
    cluster = clusters[0]
    status = cluster.get("status", "?")
    detail = f"{cluster.get('clusterName', name)} {status} ({cluster.get('runningTasksCount', 0)} running tasks)"
    if status != "ACTIVE":
        return CheckResult(
            "ECS cluster",
            False,
            f"{detail}: only an ACTIVE cluster runs tasks",
            fix="--set cluster=NAME of an ACTIVE cluster",
        )
    return CheckResult("ECS cluster", True, detail)


def _templates(st: EcsState) -> list[CheckResult]:
    out = []
    for setting, load in (
        ("task_definition_template", st.task_definition_template),
        ("run_task_template", st.run_task_template),
    ):
        location = getattr(st.settings, setting)
        if not location:
            continue
        try:
            load()
        except Exception as exc:
            out.append(
                CheckResult(
                    setting,
                    False,
                    str(exc),
                    fix=f"fix the file, or point the {setting} setting elsewhere: --set {setting}=PATH",
                )
            )
        else:
            out.append(CheckResult(setting, True, f"{location}: valid"))
    return out


def _agent_run_task(st: EcsState) -> dict[str, Any]:
    return resolve(st.settings, st.run_task_template(), EcsRunConfig())


def _network(st: EcsState) -> CheckResult:
    kwargs = _agent_run_task(st)
    placement = placement_of(kwargs)
    subnets = subnets_of(kwargs)
    groups = list(
        ((kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}).get("securityGroups") or []
    )
    if not subnets:
        if not placement.fargate:
            return CheckResult("network", True, f"{placement.describe()}: no subnets configured, none inferred")
        return CheckResult("network", True, st.default_network().describe())
    missing = []
    try:
        found = st.clients.ec2.describe_subnets(SubnetIds=subnets)["Subnets"]
        missing += sorted(set(subnets) - {s["SubnetId"] for s in found})
    except botocore.exceptions.ClientError as exc:
        return CheckResult("network", False, f"subnets {', '.join(subnets)}: {explain(exc)}", fix=SUBNETS_FIX)
    if missing:
        return CheckResult("network", False, f"subnet(s) {', '.join(missing)} do not exist", fix=SUBNETS_FIX)
    if groups:
        try:
            st.clients.ec2.describe_security_groups(GroupIds=groups)
        except botocore.exceptions.ClientError as exc:
            return CheckResult(
                "network",
                False,
                f"security groups {', '.join(groups)}: {explain(exc)}",
                fix="--set security_groups=sg-a,sg-b (existing groups of the subnets' VPC)",
            )
    return CheckResult(
        "network", True, f"subnets {', '.join(subnets)}; security groups {', '.join(groups) or 'default'}"
    )


def _execution_role(st: EcsState) -> CheckResult:
    settings = st.settings
    template = st.task_definition_template() or {}
    kwargs = _agent_run_task(st)
    placement = placement_of(kwargs)
    containers = [dict(c) for c in template.get("containerDefinitions") or [] if isinstance(c, dict)]
    flow = next((c for c in containers if c.get("name") == settings.container_name), None)
    if flow is None:
        flow = {"name": settings.container_name}
        containers.append(flow)
    if settings.image:
        flow["image"] = settings.image
    if settings.log_group and "logConfiguration" not in flow:
        flow["logConfiguration"] = {"logDriver": "awslogs"}
    role = settings.execution_role_arn or template.get("executionRoleArn")
    why = needs_execution_role({"containerDefinitions": containers}, placement.fargate)
    if why and not role:
        return CheckResult(
            "execution role", False, f"the agent's task definition needs one ({why})", fix=EXECUTION_ROLE_FIX
        )
    if role:
        return CheckResult("execution role", True, role)
    return CheckResult("execution role", True, "none needed by the agent's defaults")


def _log_group(st: EcsState) -> CheckResult:
    group = st.settings.log_group or ""
    answer = st.clients.logs.describe_log_groups(logGroupNamePrefix=group)
    if any(g.get("logGroupName") == group for g in answer.get("logGroups") or []):
        return CheckResult("CloudWatch log group", True, group)
    return CheckResult(
        "CloudWatch log group",
        False,
        f"{group!r} does not exist",
        fix=f"create it (aws logs create-log-group --log-group-name {group}), or change the log_group setting",
    )
