"""The ``ecs`` backend's hook implementations (entry point ``ecs`` in ``agent.backends``).

Each run attempt becomes one ECS task, started by ``run_task`` on a task definition reused by
content (:mod:`~agent_plugin_ecs.taskdef`), followed by one batched ``describe_tasks`` per
monitor tick (:mod:`~agent_plugin_ecs.tasks`), its CloudWatch output shipped to the run's logs
(:mod:`~agent_plugin_ecs.output`), stopped with ``stop_task``, and found again after a restart
by ``startedBy`` and its tags. The platform logic lives in the modules named for it; these
functions only tie it to the hook contract.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import botocore.exceptions

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.errors import AgentError, DeploymentError, StartupError
from agent_core.serving import is_loopback
from agent_core.states import State
from agent_core.workload import API_URL, ships_output
from agent_plugin_ecs import output, tasks
from agent_plugin_ecs import preflight as checks
from agent_plugin_ecs.aws import NO_CREDENTIALS, UNREACHABLE, AwsUnavailable, explain
from agent_plugin_ecs.deploy import deploy, deployment_of
from agent_plugin_ecs.names import TAG_AGENT, TAG_ATTEMPT, TAG_RUN, started_by, tag_dict, task_id
from agent_plugin_ecs.network import NoDefaultVpc
from agent_plugin_ecs.runtask import placement_of, resolve, subnets_of
from agent_plugin_ecs.schemas import EcsRunConfig, EcsRunConfigSchema, EcsSettingsSchema
from agent_plugin_ecs.state import EcsState, state_of
from agent_plugin_ecs.taskdef import from_described
from agent_plugin_ecs.templates import TemplateError

# Belt and braces: a state file younger than this is never reaped, whatever the runs say.
REAP_MIN_AGE = 30.0
STOP_POLL = 0.5


def _key(deployment: Deployment) -> str:
    return str(deployment.data.get("key") or task_id(deployment.platform_id))


# --- start-up -------------------------------------------------------------------------------


@hookimpl
def settings_schema() -> EcsSettingsSchema:
    return EcsSettingsSchema()


@hookimpl
def run_config_schema() -> EcsRunConfigSchema:
    return EcsRunConfigSchema()


@hookimpl
def on_startup(agent: Any) -> None:
    st = state_of(agent)
    try:
        st.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the ecs backend's state_dir {st.state_dir}: {exc.strerror}; "
            "choose another with --set state_dir=PATH"
        ) from None
    try:
        st.task_definition_template()
        kwargs = resolve(st.settings, st.run_task_template(), EcsRunConfig())
    except TemplateError as exc:
        raise StartupError(str(exc)) from None
    except AwsUnavailable as exc:
        raise StartupError(str(exc)) from None
    _warn_unreachable_api(agent)
    placement = placement_of(kwargs)
    if placement.fargate and not subnets_of(kwargs):
        try:
            network = st.default_network()
        except NoDefaultVpc as exc:
            raise StartupError(str(exc)) from None
        except AwsUnavailable as exc:
            # Not fatal: readiness reports it, and a deploy looks again.
            agent.logger.warning("cannot infer the Fargate network yet: %s", exc)
        else:
            agent.logger.info("Fargate tasks use the %s", network.describe())


def _warn_unreachable_api(agent: Any) -> None:
    """Say at start-up that tasks cannot reach an API on the agent's loopback, unless the
    agent's env points workloads elsewhere (a run config may still do so per run)."""
    if API_URL in (agent.env or {}) or not is_loopback(urlsplit(agent.api_url).hostname or ""):
        return
    agent.logger.warning(
        "the API is on this host's loopback (%s), which ECS tasks cannot reach: serve it where tasks can "
        "(agent server start --host 0.0.0.0 --auth ...) and point workloads at it with "
        "--env AGENT_API_URL=URL (workloads that never call the API need nothing)",
        agent.api_url,
    )


@hookimpl
def preflight(agent: Any) -> list[CheckResult]:
    try:
        return checks.checks(state_of(agent), agent)
    except Exception as exc:  # never raise from preflight: readiness calls it every round
        return [CheckResult("ecs backend", False, explain(exc), fix=checks.fix_for("ecs backend", exc))]


@hookimpl
def list_deployments(agent: Any) -> list[LiveDeployment] | None:
    st = state_of(agent)
    cluster = str(resolve(st.settings, _template_or_none(st), EcsRunConfig()).get("cluster") or "")
    try:
        return _live(st, agent, cluster)
    except (botocore.exceptions.ClientError, AwsUnavailable, *UNREACHABLE, *NO_CREDENTIALS) as exc:
        # None: the core then re-attaches through the deployments recorded on the runs.
        agent.logger.warning("cannot list ECS tasks to re-attach: %s", explain(exc))
        return None


def _template_or_none(st: EcsState) -> dict[str, Any] | None:
    try:
        return st.run_task_template()
    except TemplateError:
        return None


def _live(st: EcsState, agent: Any, cluster: str) -> list[LiveDeployment]:
    ecs = st.clients.ecs
    where = {"cluster": cluster} if cluster else {}
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        **where, startedBy=started_by(agent.name), desiredStatus="RUNNING"
    ):
        arns += page.get("taskArns") or []
    found: list[LiveDeployment] = []
    for start in range(0, len(arns), tasks.DESCRIBE_BATCH):
        answer = ecs.describe_tasks(**where, tasks=arns[start : start + tasks.DESCRIBE_BATCH], include=["TAGS"])
        for task in answer.get("tasks") or []:
            tags = tag_dict(task.get("tags"))
            if tags.get(TAG_AGENT) != agent.name[:256] or TAG_RUN not in tags:
                continue
            try:
                attempt = int(tags.get(TAG_ATTEMPT, ""))
            except ValueError:
                continue
            try:
                definition = from_described(st.registry.describe(task["taskDefinitionArn"]), st.settings.container_name)
            except DeploymentError:
                continue
            key = f"{tags[TAG_RUN]}-{attempt}"
            deployment = deployment_of(task["taskArn"], cluster, definition, task["taskDefinitionArn"], key)
            st.tracker.watch(task["taskArn"], cluster)
            found.append(LiveDeployment(tags[TAG_RUN], attempt, deployment))
    return found


# --- deployment -----------------------------------------------------------------------------


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
    st = state_of(agent)
    if st.closed:
        raise DeploymentError("the ecs backend has shut down")
    rc = run_config if isinstance(run_config, EcsRunConfig) else EcsRunConfigSchema().load(dict(run_config or {}))
    return deploy(st, agent, flow_run, rc)


# --- following a deployment -----------------------------------------------------------------


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
    st = state_of(agent)
    key = _key(deployment)
    record = st.record(key)
    if record.final:
        return DeploymentStatus.exited(int(record.exit_code or 0), record.reason)
    cluster = str(deployment.data.get("cluster") or "")
    container = str(deployment.data.get("container") or st.settings.container_name)
    try:
        task = st.tracker.status(deployment.platform_id, cluster)
    except AwsUnavailable as exc:
        # Not the workload's fault: keep following it (readiness reports AWS meanwhile).
        return DeploymentStatus.pending(str(exc))
    if task is None:
        return DeploymentStatus.pending("not described yet")
    if isinstance(task, tasks.Missing):
        launched = float(deployment.data.get("launched_at") or 0)
        if not st.tracker.seen(deployment.platform_id) and time.time() - launched < tasks.MISSING_GRACE:
            return DeploymentStatus.pending(f"ECS does not know task {task_id(deployment.platform_id)} yet")
        st.tracker.forget(deployment.platform_id)
        return DeploymentStatus.missing(
            f"ECS no longer knows task {task_id(deployment.platform_id)} ({task.reason}); "
            "ECS forgets stopped tasks about an hour after they stop"
        )
    status = task.get("lastStatus", "")
    if status in tasks.PENDING_STATUSES:
        return DeploymentStatus.pending(f"task {status}")
    interval = st.settings.output_interval
    if status != "STOPPED":
        output.ship(agent, st.clients, flow_run, deployment.data, record, final=False, interval=interval,
                    page_limit=st.log_page_limit, clock=st.clock)  # fmt: skip
        return DeploymentStatus.running()
    output.ship(agent, st.clients, flow_run, deployment.data, record, final=True, interval=interval,
                page_limit=st.log_page_limit, clock=st.clock)  # fmt: skip
    code, reason = tasks.stopped_outcome(task, container)
    record.exit_code, record.reason = code, reason
    record.save()
    st.tracker.forget(deployment.platform_id)
    return DeploymentStatus.exited(code, reason)


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str] | None:
    if not ships_output(agent, flow_run):
        return None  # output off: no tail in the run's message either (it stays in CloudWatch)
    st = state_of(agent)
    lines, why = output.tail(st.clients, deployment.data, tail)
    if lines is None:
        agent.write_run_log(flow_run, f"No output to attach: {why}", "WARNING")
    return lines


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
    st = state_of(agent)
    cluster = str(deployment.data.get("cluster") or "")
    where = {"cluster": cluster} if cluster else {}
    reason = f"Cancelled through agent {agent.name} (flow run {flow_run.id})"[:255]
    try:
        st.clients.ecs.stop_task(**where, task=deployment.platform_id, reason=reason)
    except botocore.exceptions.ClientError as exc:
        if "not found" in explain(exc).lower() or "ClusterNotFound" in explain(exc):
            return True  # nothing left to stop
        agent.logger.warning("could not stop the task of run %s: %s", flow_run.id, explain(exc))
        return False
    except (*UNREACHABLE, *NO_CREDENTIALS) as exc:
        agent.logger.warning("could not stop the task of run %s: %s", flow_run.id, explain(exc))
        return False  # the monitor tries again next round
    stop_timeout = deployment.data.get("stop_timeout")
    agent.write_run_log(
        flow_run,
        f"Asked ECS to stop task {task_id(deployment.platform_id)}: SIGTERM, then SIGKILL after the container's "
        f"stop timeout ({stop_timeout if stop_timeout is not None else 30}s)",
    )
    # Wait (within the grace period) for the stop, to ship the last output; ECS finishes it regardless.
    deadline = st.clock() + max(0.0, grace_seconds)
    while True:
        try:
            found = tasks.describe(st.clients, cluster, [deployment.platform_id]).get(deployment.platform_id)
        except AwsUnavailable:
            found = None
        if isinstance(found, dict) and found.get("lastStatus") == "STOPPED":
            break
        if st.clock() >= deadline:
            break
        st.sleep(STOP_POLL)
    record = st.record(_key(deployment))
    output.ship(agent, st.clients, flow_run, deployment.data, record, final=True, interval=0,
                page_limit=st.log_page_limit, clock=st.clock)  # fmt: skip
    st.tracker.forget(deployment.platform_id)
    return True


# --- housekeeping ---------------------------------------------------------------------------


@hookimpl
def heartbeat(agent: Any) -> None:
    """Forget the records (state files) of run attempts that are no longer active."""
    st = state_of(agent)
    if st.closed or not st.state_dir.is_dir():
        return
    try:
        active_runs = agent.client.list_flow_runs(
            agent_id=agent.id, states=[State.SUBMITTED.value, State.RUNNING.value, State.CANCELLING.value]
        )
    except AgentError:
        return
    active = {f"{run['id']}-{run.get('attempt', 1)}" for run in active_runs}
    now = time.time()
    for path in st.state_dir.glob("*.json"):
        key = path.name.removesuffix(".json")
        try:
            old = now - path.stat().st_mtime > REAP_MIN_AGE
        except OSError:
            continue
        if old and key not in active:
            st.forget(key)


# --- shutdown -------------------------------------------------------------------------------


@hookimpl
def on_shutdown(agent: Any) -> None:
    st = state_of(agent)
    st.closed = True
    st.clients.close()
