"""Deploying one run as an ECS task: its definition, its network, its run-task call."""

from __future__ import annotations

import time
from typing import Any

from agent_core import Deployment, FlowRun
from agent_core.errors import DeploymentError
from agent_plugin_ecs import images, runtask, taskdef, templates
from agent_plugin_ecs.names import (
    BACKEND,
    TAG_AGENT,
    TAG_ATTEMPT,
    TAG_BACKEND,
    TAG_FLOW,
    TAG_RUN,
    as_tag_list,
    client_token,
    family_for,
    started_by,
    tag_dict,
    tag_value,
    task_id,
)
from agent_plugin_ecs.runtask import Placement
from agent_plugin_ecs.schemas import EcsRunConfig
from agent_plugin_ecs.state import EcsState
from agent_plugin_ecs.taskdef import Definition, DefinitionInputs


def definition_for(
    st: EcsState, agent: Any, flow_run: FlowRun, rc: EcsRunConfig, placement: Placement, subnets: bool
) -> Definition:
    """The definition of this run: an existing one by ARN, or one built (and registered) by content."""
    settings = st.settings
    if rc.task_definition_arn:
        return taskdef.from_described(st.registry.describe(rc.task_definition_arn), settings.container_name)
    base_is_run_config = True
    if rc.task_definition is not None:
        base, source = rc.task_definition, "the run config's task_definition"
    elif rc.task_definition_path:
        try:
            base = templates.load_task_definition(rc.task_definition_path, st.clients)
        except templates.TemplateError as exc:
            raise DeploymentError(f"task_definition_path: {exc}") from None
        source = rc.task_definition_path
    else:
        base, base_is_run_config = st.task_definition_template(), False
        source = (
            f"the task_definition_template {settings.task_definition_template}"
            if settings.task_definition_template
            else "the default task definition"
        )
    inputs = DefinitionInputs(
        family=family_for(flow_run.flow_name or flow_run.flow_id),
        container=settings.container_name,
        run_image=rc.image,
        agent_image=settings.image,
        run_task_role=rc.task_role_arn,
        agent_task_role=settings.task_role_arn,
        run_execution_role=rc.execution_role_arn,
        agent_execution_role=settings.execution_role_arn,
        agent_cpu=settings.cpu,
        agent_memory=settings.memory,
        launch_type=placement.launch_type,
        fargate=placement.fargate,
        subnets_configured=subnets,
        log_group=settings.log_group,
        log_stream_prefix=settings.log_stream_prefix,
        region=st.clients.region,
        stop_timeout=agent.settings.cancel_grace_seconds,
        tags={**settings.tags, TAG_BACKEND: BACKEND},
    )
    return taskdef.build(base, inputs, source=source, base_is_run_config=base_is_run_config)


def _network(st: EcsState, kwargs: dict[str, Any], definition: Definition, placement: Placement) -> None:
    """Network configuration on awsvpc only; the default VPC's on Fargate when none is configured."""
    if definition.network_mode != "awsvpc":
        kwargs.pop("networkConfiguration", None)
        return
    if runtask.subnets_of(kwargs):
        return
    if not placement.fargate:
        raise DeploymentError(
            f"task definition family {definition.family!r} uses the awsvpc network mode on "
            f"{placement.describe()}: set subnets (--set subnets=subnet-a,subnet-b), nothing is inferred off Fargate"
        )
    given = (kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}
    kwargs["networkConfiguration"] = {"awsvpcConfiguration": {**st.default_network().awsvpc(), **given}}


def deploy(st: EcsState, agent: Any, flow_run: FlowRun, rc: EcsRunConfig) -> Deployment:
    settings = st.settings
    kwargs = runtask.resolve(settings, st.run_task_template(), rc)
    placement = runtask.placement_of(kwargs)
    definition = definition_for(st, agent, flow_run, rc, placement, bool(runtask.subnets_of(kwargs)))
    # The operator's allow-list, before anything is registered or started (container overrides
    # cannot change an image, so the definition's images are all the task runs).
    where = f"task definition {rc.task_definition_arn}" if rc.task_definition_arn else "the run's task definition"
    images.check_definition(definition.params, list(settings.allowed_registries), where)

    def log(message: str) -> None:
        agent.write_run_log(flow_run, message)

    arn = definition.arn or st.registry.arn_for(definition, log)
    _network(st, kwargs, definition, placement)

    overrides = kwargs.setdefault("overrides", {})
    if rc.task_definition_arn:
        # An existing definition keeps its roles unless the run or the agent says otherwise.
        if rc.task_role_arn:
            overrides["taskRoleArn"] = rc.task_role_arn
        elif not definition.task_role_arn and settings.task_role_arn:
            overrides["taskRoleArn"] = settings.task_role_arn
        if rc.execution_role_arn or settings.execution_role_arn:
            overrides["executionRoleArn"] = rc.execution_role_arn or settings.execution_role_arn
    flow = runtask.flow_override(kwargs, settings.container_name)
    if flow_run.command:
        flow["command"] = ["/bin/sh", "-c", flow_run.command]
    # Core's workload contract (defaults such as PYTHONUNBUFFERED included): placed as given, so
    # that a null in any layer, which core has already applied, stays applied.
    runtask.set_environment(flow, agent.flow_run_env(flow_run, dict(rc.env)))
    ours = {
        TAG_BACKEND: BACKEND,
        TAG_RUN: flow_run.id,
        TAG_ATTEMPT: str(flow_run.attempt),
        TAG_AGENT: tag_value(agent.name),
        TAG_FLOW: tag_value(flow_run.flow_name),
    }
    kwargs.update(
        taskDefinition=arn,
        count=1,
        startedBy=started_by(agent.name),
        clientToken=client_token(flow_run.id, flow_run.attempt),
        tags=as_tag_list({**tag_dict(kwargs.get("tags")), **ours}),
    )
    runtask.check_size(kwargs)
    task = runtask.launch(
        st.clients,
        kwargs,
        start_timeout=settings.start_timeout,
        log=log,
        stopping=lambda: bool(agent.stopping),
        sleep=st.sleep,
        clock=st.clock,
    )
    deployment = deployment_of(task["taskArn"], kwargs.get("cluster", ""), definition, arn, flow_run.key)
    if task.get("relaunched"):
        log(
            f"Attempt {flow_run.attempt} was already launched as task {task_id(task['taskArn'])}; not starting it twice"
        )
    st.tracker.watch(task["taskArn"], kwargs.get("cluster", ""))
    return deployment


def deployment_of(task_arn: str, cluster: str, definition: Definition, definition_arn: str, key: str) -> Deployment:
    ident = task_id(task_arn)
    data: dict[str, Any] = {
        "cluster": cluster,
        "key": key,
        "task_definition": definition_arn,
        "container": definition.container,
        "launched_at": time.time(),
    }
    if definition.stop_timeout is not None:
        data["stop_timeout"] = int(definition.stop_timeout)
    if definition.log is not None:
        data.update(
            log_group=definition.log.group,
            log_stream=definition.log.stream(definition.container, ident),
            log_region=definition.log.region or "",
        )
    where = f" on cluster {cluster}" if cluster else ""
    revision, image = definition_arn.rsplit("/", 1)[-1], definition.flow_container().get("image", "?")
    return Deployment(
        backend=BACKEND,
        platform_id=task_arn,
        info=f"ECS task {ident}{where} ({revision}, image {image})",
        data=data,
    )
