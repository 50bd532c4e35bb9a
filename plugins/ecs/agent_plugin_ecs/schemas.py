"""The ``ecs`` run-config type and the ecs backend's settings (``[backends.ecs]``).

Settings load into a frozen :class:`EcsSettings`; a run config loads into a frozen
:class:`EcsRunConfig`. Both are validated before any AWS call: an inline task definition and
``run_task_kwargs`` are checked against botocore's own model of the ECS API (offline), so a
misspelt key fails the run naming it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, pre_load, validate, validates_schema

from agent_core.runconfig import RunConfigSchema
from agent_core.settings_fields import (
    StringDict,
    StringList,
    check_default_image,
    list_from_text,
    validate_registries,
)
from agent_plugin_ecs.shapes import shape_problems

LAUNCH_TYPES = ("FARGATE", "FARGATE_SPOT", "EC2", "EXTERNAL")
# run_task arguments the backend sets itself; the run config names the field to use instead.
RESERVED_RUN_TASK_KWARGS = {
    "taskDefinition": "task_definition_arn",
    "clientToken": None,
    "startedBy": None,
    "count": None,
}
# Names of Prefect 1.x's ECSAgent options, and what replaces them here.
SEED_SETTINGS = {
    "task_definition_path": "task_definition_template",
    "run_task_kwargs_path": "run_task_template",
    "region_name": "region",
    "aws_access_key_id": None,
    "aws_secret_access_key": None,
    "aws_session_token": None,
    "botocore_config": None,
}


class Units(fields.Field):
    """Task cpu or memory: a number (``1024``) or ECS's own string (``"1 vCPU"``, ``"2 GB"``); kept as a string."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationError("must be a number (1024) or a string like '1 vCPU' or '2 GB'")
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value).strip()
        if not text or (isinstance(value, int | float) and value <= 0):
            raise ValidationError("must be positive")
        return text


class Strategy(fields.Field):
    """Capacity providers: a JSON list of ``{capacityProvider, weight, base}``, or ``NAME[:WEIGHT[:BASE]],...``."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        if isinstance(value, str) and not value.strip().startswith("["):
            value = [_strategy_item(item) for item in list_from_text(value)]
        value = list_from_text(value)
        if not isinstance(value, list) or not value:
            raise ValidationError("must be a non-empty list of {capacityProvider, weight, base}")
        out = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("capacityProvider"), str):
                raise ValidationError("each item needs a capacityProvider name")
            unknown = set(item) - {"capacityProvider", "weight", "base"}
            if unknown:
                raise ValidationError(
                    f"unknown key(s) {', '.join(sorted(unknown))}: use capacityProvider, weight, base"
                )
            for key in ("weight", "base"):
                if key in item and (isinstance(item[key], bool) or not isinstance(item[key], int) or item[key] < 0):
                    raise ValidationError(f"{key} must be a whole number >= 0")
            out.append(dict(item))
        return out


def _strategy_item(text: str) -> dict[str, Any]:
    name, *numbers = text.split(":")
    if not name or len(numbers) > 2 or not all(n.strip().isdigit() for n in numbers):
        raise ValidationError(f"{text!r}: use NAME[:WEIGHT[:BASE]], e.g. FARGATE_SPOT:3,FARGATE:1:1")
    item: dict[str, Any] = {"capacityProvider": name.strip()}
    if numbers:
        item["weight"] = int(numbers[0])
    if len(numbers) > 1:
        item["base"] = int(numbers[1])
    return item


@dataclass(frozen=True)
class EcsSettings:
    """``[backends.ecs]``, loaded (see ``docs/backends/ecs.md`` for each field)."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    cluster: str | None = None
    launch_type: str | None = None
    capacity_provider_strategy: list[dict[str, Any]] | None = None
    subnets: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    assign_public_ip: bool | None = None
    task_role_arn: str | None = None
    execution_role_arn: str | None = None
    image: str | None = None
    cpu: str | None = None
    memory: str | None = None
    container_name: str = "flow"
    task_definition_template: str | None = None
    run_task_template: str | None = None
    log_group: str | None = None
    log_stream_prefix: str = "agent"
    tags: dict[str, str] = field(default_factory=dict)
    allowed_registries: list[str] = field(default_factory=list)
    register_rate: float = 1.0
    register_burst: int = 5
    start_timeout: float = 120.0
    output_interval: float = 5.0
    state_dir: str | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """Mapping-style access, for code that treats every backend's settings alike."""
        return getattr(self, name, default)


def _optional_string(description: str) -> fields.String:
    return fields.String(load_default=None, allow_none=True, metadata={"description": description})


class EcsSettingsSchema(Schema):
    """``[backends.ecs]``: where tasks run, their defaults, the templates, logs and rate budget."""

    class Meta:
        unknown = RAISE

    region = _optional_string("AWS region; default: boto3's (AWS_REGION, AWS_DEFAULT_REGION, the profile)")
    profile = _optional_string("AWS profile for credentials and region")
    endpoint_url = _optional_string("endpoint for every AWS call (a stand-in such as moto)")
    cluster = _optional_string("cluster name or ARN; default: the account's default cluster")
    launch_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LAUNCH_TYPES))
    capacity_provider_strategy = Strategy(load_default=None, allow_none=True)
    subnets = StringList(load_default=list)
    security_groups = StringList(load_default=list)
    assign_public_ip = fields.Boolean(load_default=None, allow_none=True)
    task_role_arn = _optional_string("task role for definitions that name none")
    execution_role_arn = _optional_string("execution role (image pulls, awslogs, secrets)")
    image = _optional_string("image for runs whose run config and template name none")
    cpu = Units(
        load_default=None, allow_none=True, metadata={"description": "task cpu; 1024 when the template has none"}
    )
    memory = Units(load_default=None, allow_none=True, metadata={"description": "task memory; 2048 when unset"})
    container_name = fields.String(load_default="flow", validate=validate.Length(min=1, max=255))
    task_definition_template = _optional_string("JSON or YAML file, or s3://bucket/key")
    run_task_template = _optional_string("JSON or YAML file, or s3://bucket/key, of run_task arguments")
    log_group = _optional_string("CloudWatch log group for the flow container (awslogs)")
    log_stream_prefix = fields.String(load_default="agent", validate=validate.Length(min=1))
    tags = StringDict(load_default=dict, metadata={"description": "added to every task and task definition"})
    allowed_registries = StringList(
        load_default=list,
        validate=validate_registries,
        metadata={"description": "registries (host[:port][/path]) task images may come from; empty: any"},
    )
    register_rate = fields.Float(load_default=1.0, validate=validate.Range(min=0, min_inclusive=False))
    register_burst = fields.Integer(load_default=5, validate=validate.Range(min=1))
    start_timeout = fields.Float(load_default=120.0, validate=validate.Range(min=0))
    output_interval = fields.Float(load_default=5.0, validate=validate.Range(min=0))
    state_dir = _optional_string("default $AGENT_HOME/ecs-runs")

    @pre_load
    def _sources(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        problems = {}
        for old, new in SEED_SETTINGS.items():
            if old in data:
                problems[old] = [
                    f"the seed's ECS agent option; use {new!r}"
                    if new
                    else "credentials and botocore options come from boto3's own chain "
                    "(AWS_* environment variables, a profile, an instance role); this backend takes none"
                ]
        if problems:
            raise ValidationError(problems)
        data = dict(data)
        if data.get("launch_type") is not None and data.get("capacity_provider_strategy") is not None:
            # The two exclude each other: the one set by the later source (its key comes later in
            # the merged settings: file < environment < --set) replaces the other.
            keys = list(data)
            drop = (
                "launch_type"
                if keys.index("launch_type") < keys.index("capacity_provider_strategy")
                else "capacity_provider_strategy"
            )
            data.pop(drop)
        return data

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("security_groups") and not data.get("subnets") and data.get("launch_type") == "EC2":
            raise ValidationError("security_groups need subnets on EC2 (awsvpc network mode)", "security_groups")
        check_default_image(data.get("image"), data.get("allowed_registries") or [])

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> EcsSettings:
        return EcsSettings(**data)


@dataclass(frozen=True)
class EcsRunConfig:
    """A run's ``ecs`` run config, loaded (see ``docs/backends/ecs.md``)."""

    image: str | None = None
    cpu: str | None = None
    memory: str | None = None
    env: dict[str, str | None] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    task_role_arn: str | None = None
    execution_role_arn: str | None = None
    launch_type: str | None = None
    capacity_provider_strategy: list[dict[str, Any]] | None = None
    task_definition: dict[str, Any] | None = None
    task_definition_path: str | None = None
    task_definition_arn: str | None = None
    run_task_kwargs: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


class EcsRunConfigSchema(RunConfigSchema):
    """``{"type": "ecs", "image": ..., "cpu": ..., "env": {...}, ...}``; unset fields fall back to the agent's."""

    class Meta:
        unknown = RAISE

    image = _optional_string("default: the template's flow container, then the image setting")
    cpu = Units(load_default=None, allow_none=True, metadata={"description": "task cpu (run-task override)"})
    memory = Units(load_default=None, allow_none=True, metadata={"description": "task memory (run-task override)"})
    task_role_arn = _optional_string("replaces the definition's and the agent's")
    execution_role_arn = _optional_string("replaces the agent's")
    launch_type = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(LAUNCH_TYPES))
    capacity_provider_strategy = Strategy(load_default=None, allow_none=True)
    task_definition = fields.Dict(load_default=None, allow_none=True, metadata={"description": "inline definition"})
    task_definition_path = _optional_string("JSON or YAML file on the agent's machine, or s3://bucket/key")
    task_definition_arn = _optional_string("an existing definition: ARN or family:revision, used as is")
    run_task_kwargs = fields.Dict(keys=fields.String(), load_default=dict)

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [key for key in ("task_definition", "task_definition_path", "task_definition_arn") if data.get(key)]
        if len(given) > 1:
            raise ValidationError(f"{' and '.join(given)} exclude each other: give one", given[1])
        if data.get("launch_type") and data.get("capacity_provider_strategy"):
            raise ValidationError(
                "launch_type and capacity_provider_strategy exclude each other: give one", "capacity_provider_strategy"
            )
        if data.get("task_definition") is not None:
            problems = definition_problems(data["task_definition"])
            if problems:
                raise ValidationError(problems, "task_definition")
        kwargs_problems = run_task_problems(data.get("run_task_kwargs") or {})
        if kwargs_problems:
            raise ValidationError(kwargs_problems, "run_task_kwargs")

    @post_load
    def _make(self, data: dict[str, Any], **kwargs: Any) -> EcsRunConfig:
        return EcsRunConfig(**data)


def definition_problems(definition: Any) -> list[str]:
    """Why ``definition`` is not a task definition ``register_task_definition`` would take (offline)."""
    if not isinstance(definition, dict):
        return ["must be an object (the arguments of register_task_definition)"]
    candidate = dict(definition)
    for key in ("cpu", "memory"):
        if isinstance(candidate.get(key), int | float) and not isinstance(candidate.get(key), bool):
            candidate[key] = str(candidate[key])
    return shape_problems("RegisterTaskDefinitionRequest", candidate)


def run_task_problems(kwargs: Any) -> list[str]:
    """Why ``kwargs`` are not ``run_task`` arguments this backend can pass on (offline)."""
    if not isinstance(kwargs, dict):
        return ["must be an object (the arguments of run_task)"]
    problems = []
    for key, instead in RESERVED_RUN_TASK_KWARGS.items():
        if key in kwargs:
            problems.append(
                f"{key!r} is not allowed here: "
                + (f"use the run config's {instead!r} field" if instead else "the backend sets it")
            )
    rest = {key: value for key, value in kwargs.items() if key not in RESERVED_RUN_TASK_KWARGS}
    return problems + shape_problems("RunTaskRequest", {"taskDefinition": "x", **rest})
