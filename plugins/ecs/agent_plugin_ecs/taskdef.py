"""Task definitions by content: built, normalised, hashed, and registered once.

The definition a run needs comes from a base (the run config's own definition, inline or from a
file, else the agent's template, else nothing), completed with the agent's settings and the
run config (image, roles, cpu and memory, log configuration, compatibilities). It holds no
environment of the agent or the run: that goes into the run-task container overrides.

Its register arguments are normalised (sorted keys, no empty values, cpu and memory as strings)
and hashed; :class:`DefinitionRegistry` reuses a definition with the same hash, found by its
family and the ``agent.definition_hash`` tag and then cached, and registers one only when none
exists, under a lock per hash (concurrent deploys of one flow register it once) and within one
rate budget shared by every deploy thread. Definitions are never deregistered.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import botocore.exceptions

from agent_core.errors import DeploymentError
from agent_plugin_ecs.aws import UNREACHABLE, AwsClients, AwsUnavailable, error_code, explain
from agent_plugin_ecs.names import TAG_HASH, as_tag_list, tag_dict
from agent_plugin_ecs.ratelimit import RateBudget
from agent_plugin_ecs.shapes import shape_problems

DEFAULT_CPU = "1024"
DEFAULT_MEMORY = "2048"
# How many recent revisions of a family are searched for a hash before registering a new one.
SCAN_REVISIONS = 10
ECR_IMAGE = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/")
FARGATE_MAX_STOP_TIMEOUT = 120


@dataclass(frozen=True)
class LogTarget:
    """Where the awslogs driver writes a container's output."""

    group: str
    prefix: str
    region: str | None

    def stream(self, container: str, task_id: str) -> str:
        return f"{self.prefix}/{container}/{task_id}"


@dataclass
class Definition:
    """A task definition to use: either register arguments (``params``) or an existing ``arn``."""

    params: dict[str, Any]
    container: str
    hash: str = ""
    arn: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    log: LogTarget | None = None
    stop_timeout: int | None = None

    @property
    def family(self) -> str:
        return str(self.params.get("family", ""))

    @property
    def network_mode(self) -> str:
        return str(self.params.get("networkMode") or "bridge")

    @property
    def task_role_arn(self) -> str | None:
        return self.params.get("taskRoleArn")

    @property
    def execution_role_arn(self) -> str | None:
        return self.params.get("executionRoleArn")

    def flow_container(self) -> dict[str, Any]:
        return next(c for c in self.params["containerDefinitions"] if c.get("name") == self.container)


def normalise(value: Any) -> Any:
    """Register arguments without empty values, so that equal definitions hash equal."""
    if isinstance(value, dict):
        out = {k: normalise(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", [], {})}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def content_hash(params: dict[str, Any]) -> str:
    text = json.dumps(
        normalise({k: v for k, v in params.items() if k != "tags"}), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def log_target(container: dict[str, Any]) -> LogTarget | None:
    config = container.get("logConfiguration") or {}
    options = config.get("options") or {}
    if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
        return None
    return LogTarget(
        options["awslogs-group"], options.get("awslogs-stream-prefix", ""), options.get("awslogs-region") or None
    )


def needs_execution_role(params: dict[str, Any], fargate: bool) -> str | None:
    """Why the definition needs an execution role (image pulls, awslogs, secrets), or None."""
    for container in params.get("containerDefinitions") or []:
        name = container.get("name", "?")
        if container.get("secrets"):
            return f"container {name!r} has secrets"
        if container.get("repositoryCredentials"):
            return f"container {name!r} pulls with repositoryCredentials"
        if fargate and ECR_IMAGE.match(str(container.get("image", ""))):
            return f"container {name!r} pulls its image from ECR"
        if fargate and (container.get("logConfiguration") or {}).get("logDriver") == "awslogs":
            return f"container {name!r} logs to CloudWatch (awslogs)"
    return None


@dataclass(frozen=True)
class DefinitionInputs:
    """What a run's definition is built from, apart from its base."""

    family: str
    container: str
    run_image: str | None
    agent_image: str | None
    run_task_role: str | None
    agent_task_role: str | None
    run_execution_role: str | None
    agent_execution_role: str | None
    agent_cpu: str | None
    agent_memory: str | None
    launch_type: str | None
    fargate: bool
    subnets_configured: bool
    log_group: str | None
    log_stream_prefix: str
    region: str | None
    stop_timeout: float
    tags: dict[str, str]


def build(
    base: dict[str, Any] | None, inputs: DefinitionInputs, *, source: str, base_is_run_config: bool
) -> Definition:
    """The register arguments of a run's task definition.

    :param source: names the base in messages ("the agent's task_definition_template x.yaml").
    :param base_is_run_config: the base is the run config's own definition, so it wins over
        the agent's settings (agent template < agent settings < run config).
    :raise DeploymentError: no image anywhere, an execution role is needed and missing, or the
        result is not a valid definition.
    """
    params = copy.deepcopy(base or {})
    params["family"] = params.get("family") or inputs.family
    containers = params.setdefault("containerDefinitions", [])
    if not isinstance(containers, list):
        raise DeploymentError(f"{source}: containerDefinitions must be a list")
    flow = next((c for c in containers if isinstance(c, dict) and c.get("name") == inputs.container), None)
    if flow is None:
        flow = {"name": inputs.container}
        # First: stand-ins (moto) describe a task by its first container.
        containers.insert(0, flow)
    # Image: the run config's, then the template's, then the agent's default; on this container only.
    image = inputs.run_image or flow.get("image") or inputs.agent_image
    if not image:
        raise DeploymentError(
            f"no image to run: set 'image' in the run's ecs run config, on the {inputs.container!r} container "
            "of the task definition template, or the agent's default (--set image=NAME)"
        )
    flow["image"] = image
    flow.setdefault("essential", True)
    if "stopTimeout" not in flow:
        # The grace of a cancel is the container's stop timeout: ECS sends SIGTERM, then SIGKILL.
        timeout = max(2, math.ceil(inputs.stop_timeout))
        flow["stopTimeout"] = min(timeout, FARGATE_MAX_STOP_TIMEOUT) if inputs.fargate else timeout
    if inputs.log_group and "logConfiguration" not in flow:
        options = {"awslogs-group": inputs.log_group, "awslogs-stream-prefix": inputs.log_stream_prefix}
        if inputs.region:
            options["awslogs-region"] = inputs.region
        flow["logConfiguration"] = {"logDriver": "awslogs", "options": options}

    def layered(run: Any, key: str, agent: Any, default: Any = None) -> Any:
        # agent template < agent settings < run config (its own definition included)
        if base_is_run_config:
            return run or params.get(key) or agent or default
        return run or agent or params.get(key) or default

    # Task role: the run config's, then the definition's, then the agent's.
    params["taskRoleArn"] = inputs.run_task_role or params.get("taskRoleArn") or inputs.agent_task_role
    # Execution role: the run config's, then the agent's.
    params["executionRoleArn"] = layered(inputs.run_execution_role, "executionRoleArn", inputs.agent_execution_role)
    params["cpu"] = str(layered(None, "cpu", inputs.agent_cpu, DEFAULT_CPU))
    params["memory"] = str(layered(None, "memory", inputs.agent_memory, DEFAULT_MEMORY))
    if not params.get("networkMode"):
        params["networkMode"] = "awsvpc" if inputs.fargate or inputs.subnets_configured else "bridge"
    if inputs.launch_type:
        params["requiresCompatibilities"] = [inputs.launch_type]
    else:
        # A capacity-provider strategy: ECS checks compatibility against the providers.
        params.pop("requiresCompatibilities", None)
    own = tag_dict(params.pop("tags", None))
    own.update(inputs.tags)
    params = normalise(params)

    problems = shape_problems("RegisterTaskDefinitionRequest", params, allow_missing=False)
    if problems:
        raise DeploymentError(f"{source} does not make a valid task definition: {'; '.join(problems)}")
    why = needs_execution_role(params, inputs.fargate)
    if why and not params.get("executionRoleArn"):
        raise DeploymentError(
            f"the task definition needs an execution role ({why}): set execution_role_arn in the run's "
            "ecs run config or the agent's execution_role_arn setting"
        )
    definition = Definition(params=params, container=inputs.container, tags=own)
    definition.hash = content_hash(params)
    definition.log = log_target(definition.flow_container())
    definition.stop_timeout = definition.flow_container().get("stopTimeout")
    return definition


def from_described(described: dict[str, Any], container: str) -> Definition:
    """An existing definition (``describe_task_definition``'s answer), used as is."""
    params = dict(described)
    names = [c.get("name") for c in params.get("containerDefinitions") or []]
    if container not in names:
        raise DeploymentError(
            f"task definition {params.get('taskDefinitionArn', '?')} has no container named {container!r} "
            f"(it has {', '.join(map(repr, names)) or 'none'}): the flow runs in that container"
        )
    definition = Definition(params=params, container=container, arn=str(params.get("taskDefinitionArn", "")))
    definition.log = log_target(definition.flow_container())
    definition.stop_timeout = definition.flow_container().get("stopTimeout")
    return definition


@dataclass
class RegistryStats:
    registered: int = 0
    reused: int = 0
    cached: int = 0


class DefinitionRegistry:
    """Finds or registers definitions by hash; one per agent, shared by its deploy threads."""

    def __init__(self, clients: AwsClients, budget: RateBudget) -> None:
        self.clients = clients
        self.budget = budget
        self.stats = RegistryStats()
        self._by_hash: dict[str, str] = {}
        self._described: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def arn_for(self, definition: Definition, log: Any = None) -> str:
        """The ARN of an ACTIVE definition with ``definition``'s hash, registering it if none exists.

        :param log: called with a line for the run's logs when a definition is registered.
        """
        found = self._by_hash.get(definition.hash)
        if found:
            self.stats.cached += 1
            return found
        with self._lock(definition.hash):
            found = self._by_hash.get(definition.hash)
            if found:
                self.stats.cached += 1
                return found
            found = self._find(definition)
            if found:
                self.stats.reused += 1
            else:
                found = self._register(definition)
                self.stats.registered += 1
                if log is not None:
                    log(f"Registered task definition {found.rsplit('/', 1)[-1]} (content hash {definition.hash[:12]})")
            self._by_hash[definition.hash] = found
            return found

    def _find(self, definition: Definition) -> str | None:
        family = definition.family
        try:
            latest, tags = self._describe(family, cache=False)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) in ("ClientException", "InvalidParameterException"):
                return None  # no ACTIVE revision in this family yet
            raise DeploymentError(f"cannot look up task definition family {family!r}: {explain(exc)}") from None
        if tags.get(TAG_HASH) == definition.hash:
            return str(latest["taskDefinitionArn"])
        try:
            arns = self._recent_revisions(family)
        except botocore.exceptions.ClientError as exc:
            raise DeploymentError(f"cannot list task definition family {family!r}: {explain(exc)}") from None
        for arn in arns:
            if arn == latest["taskDefinitionArn"]:
                continue
            try:
                _, tags = self._describe(arn, cache=True)
            except botocore.exceptions.ClientError:
                continue
            if tags.get(TAG_HASH) == definition.hash:
                return arn
        return None

    def _recent_revisions(self, family: str) -> list[str]:
        answer = self.clients.ecs.list_task_definitions(
            familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=SCAN_REVISIONS
        )
        arns = list(answer.get("taskDefinitionArns") or [])
        # Newest first, also where the service ignores `sort` (stand-ins).
        arns.sort(key=lambda arn: int(arn.rsplit(":", 1)[-1]) if arn.rsplit(":", 1)[-1].isdigit() else 0, reverse=True)
        return arns[:SCAN_REVISIONS]

    def _describe(self, ref: str, *, cache: bool) -> tuple[dict[str, Any], dict[str, str]]:
        if cache and ref in self._described:
            return self._described[ref]
        try:
            answer = self.clients.ecs.describe_task_definition(taskDefinition=ref, include=["TAGS"])
        except UNREACHABLE as exc:
            raise AwsUnavailable(f"cannot reach ECS: {explain(exc)}") from None
        found = (answer["taskDefinition"], tag_dict(answer.get("tags")))
        if cache:
            self._described[ref] = found
        return found

    def describe(self, ref: str) -> dict[str, Any]:
        """An existing definition by ARN or ``family:revision`` (cached: a revision never changes)."""
        try:
            described, _ = self._describe(ref, cache=":" in ref.rsplit("/", 1)[-1])
        except botocore.exceptions.ClientError as exc:
            raise DeploymentError(f"cannot use task definition {ref!r}: {explain(exc)}") from None
        return described

    def _register(self, definition: Definition) -> str:
        tags = {**definition.tags, TAG_HASH: definition.hash}
        self.budget.acquire()
        try:
            answer = self.clients.ecs.register_task_definition(**definition.params, tags=as_tag_list(tags))
        except botocore.exceptions.ClientError as exc:
            raise DeploymentError(
                f"ECS refused to register task definition family {definition.family!r}: {explain(exc)}"
            ) from None
        except UNREACHABLE as exc:
            raise AwsUnavailable(f"cannot reach ECS: {explain(exc)}") from None
        return str(answer["taskDefinition"]["taskDefinitionArn"])
