"""Request schemas: what each endpoint accepts. The OpenAPI document is generated from these."""

from __future__ import annotations

from typing import Any, ClassVar

import pendulum
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from agent_core.errors import RunConfigMismatch
from agent_core.runconfig import core_options
from agent_core.server.settings import MAX_WAIT_SECONDS
from agent_core.states import State

NAME = validate.Length(min=1, max=200)
LABEL = fields.String(validate=validate.Length(min=1, max=200))
MAX_PAGE = 500


class UTCDateTime(fields.DateTime):
    """ISO 8601; a time without an offset is taken as UTC. Loads to pendulum UTC."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> pendulum.DateTime:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 date-time string")
        try:
            parsed = pendulum.parse(value, tz="UTC")
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            raise ValidationError(f"not an ISO 8601 date-time: {value!r}") from None
        if not isinstance(parsed, pendulum.DateTime):
            raise ValidationError(f"not a date-time: {value!r}")
        try:
            return parsed.in_timezone("UTC")
        except (OverflowError, ValueError):
            raise ValidationError(f"out of range once converted to UTC: {value!r}") from None


class StrictInteger(fields.Integer):
    """An integer that refuses booleans and strings (JSON bodies say what they mean)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("must be an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError("must be an integer, not a fraction")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictFloat(fields.Float):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("must be a number")
        return super()._deserialize(value, attr, data, **kwargs)


class StrictBoolean(fields.Boolean):
    """``true`` or ``false``, not ``"yes"`` or ``1``."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


class StrictString(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        return super()._deserialize(value, attr, data, **kwargs)


class RunConfigField(fields.Dict):
    """A typed run config: a JSON object with a string ``type``; its other keys are the backend's."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        result = super()._deserialize(value, attr, data, **kwargs)
        kind = result.get("type")
        if not isinstance(kind, str) or not kind:
            raise ValidationError('needs a "type" string, e.g. "universal", "local", "docker"')
        try:
            core_options(result)  # the core keys every type accepts (timeout_seconds, ship_output)
        except RunConfigMismatch as exc:
            raise ValidationError(str(exc).removeprefix("invalid run config: ")) from None
        if kind == "universal":
            errors = UniversalRunConfigSchema().validate(result)
            if errors:
                raise ValidationError(errors)
        return result


class Base(Schema):
    class Meta:
        unknown = RAISE


class UniversalRunConfigSchema(Base):
    """Core's run-config type: converts to any backend's type."""

    type = fields.Constant("universal")
    # null removes a variable from the workload's environment (docs/workload.md).
    env = fields.Dict(keys=StrictString(), values=StrictString(allow_none=True), load_default=dict)
    labels = fields.List(LABEL, load_default=list)
    # The core keys of every run-config type (agent_core.runconfig.CORE_RUN_CONFIG_KEYS).
    timeout_seconds = StrictFloat(allow_none=True, validate=validate.Range(min=0, min_inclusive=False))
    ship_output = StrictBoolean(allow_none=True)


def _labels() -> fields.List:
    return fields.List(StrictString(validate=validate.Length(min=1, max=200)), validate=validate.Length(max=100))


class FlowCreateSchema(Base):
    name = StrictString(required=True, validate=NAME)
    command = StrictString(required=True, validate=validate.Length(min=1, max=10_000))
    description = StrictString(load_default="", validate=validate.Length(max=10_000))
    labels = _labels()
    run_config = RunConfigField(load_default=None, allow_none=True)


class FlowRunCreateSchema(Base):
    openapi_extra: ClassVar[dict[str, Any]] = {"anyOf": [{"required": ["flow_id"]}, {"required": ["flow_name"]}]}

    flow_id = StrictString(validate=validate.Length(min=1, max=36))
    flow_name = StrictString(validate=NAME)
    name = StrictString(validate=NAME)
    parameters = fields.Dict(keys=StrictString(), load_default=dict)
    labels = fields.List(
        StrictString(validate=validate.Length(min=1, max=200)),
        allow_none=True,
        validate=validate.Length(max=100),
    )
    run_config = RunConfigField(load_default=None, allow_none=True)
    scheduled_start_time = UTCDateTime(load_default=None, allow_none=True)
    idempotency_key = StrictString(validate=validate.Length(min=1, max=200), load_default=None, allow_none=True)
    max_retries = StrictInteger(load_default=0, validate=validate.Range(min=0, max=100))
    retry_delay_seconds = StrictFloat(load_default=0.0, validate=validate.Range(min=0, max=86_400 * 7))

    @validates_schema
    def _one_flow(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("flow_id") and not data.get("flow_name"):
            raise ValidationError("give flow_id or flow_name", "flow_id")


class StateSchema(Base):
    type = StrictString(required=True, validate=validate.OneOf([s.value for s in State]))
    message = StrictString(load_default="", validate=validate.Length(max=100_000))


class DeploymentSchema(Base):
    backend = StrictString(required=True, validate=validate.Length(min=1, max=100))
    platform_id = StrictString(required=True, validate=validate.Length(max=1000))
    info = StrictString(load_default="", validate=validate.Length(max=10_000))
    data = fields.Dict(keys=StrictString(), load_default=dict)


class SetStateSchema(Base):
    openapi_extra: ClassVar[dict[str, Any]] = {
        "anyOf": [
            {"not": {"required": ["deployment"]}},
            {"properties": {"deployment": {"type": "null"}}},
            {"properties": {"state": {"properties": {"type": {"const": State.RUNNING.value}}}}},
        ]
    }

    version = StrictInteger(required=True, validate=validate.Range(min=1))
    state = fields.Nested(StateSchema, required=True)
    # A workload already running as its deploy returns: its deployment recorded with the change
    # to Running, in one request instead of two (the server's "state_deployment" feature).
    deployment = fields.Nested(DeploymentSchema, load_default=None, allow_none=True)

    @validates_schema
    def _deployment_with_running(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("deployment") is not None and data["state"]["type"] != State.RUNNING.value:
            raise ValidationError(
                f"a deployment is recorded with a change to Running only, not {data['state']['type']}; "
                "record it alone with POST /api/flow-runs/{id}/deployment",
                "deployment",
            )


class SetDeploymentSchema(Base):
    deployment = fields.Nested(DeploymentSchema, required=True)


class CancelSchema(Base):
    message = StrictString(load_default="", validate=validate.Length(max=10_000))


class PruneSchema(Base):
    older_than_seconds = fields.Float(
        required=True, allow_nan=False, validate=validate.Range(min=0, max=100 * 365 * 86400)
    )
    states = fields.List(
        fields.String(validate=validate.OneOf([s.value for s in State if s.is_final])),
        load_default=lambda: [s.value for s in State if s.is_final],
        validate=validate.Length(min=1),
        metadata={"description": "final states only (default: all of them)"},
    )
    dry_run = fields.Boolean(load_default=False)


class QueueSchema(Base):
    labels = _labels()
    before = UTCDateTime(load_default=None, allow_none=True)
    limit = StrictInteger(load_default=100, validate=validate.Range(min=1, max=MAX_PAGE))
    # The upper bound (max_wait_seconds) is checked by the handler: more is a 422 naming it.
    wait_seconds = StrictFloat(
        load_default=0.0,
        validate=validate.Range(min=0),
        metadata={
            "maximum": MAX_WAIT_SECONDS,
            "description": "hold the request up to this long until a run is ready (long poll)",
        },
    )
    claim = StrictBoolean(
        load_default=False,
        metadata={"description": "claim the runs due now for the agent named by the X-Agent-Id header"},
    )


class LogEntrySchema(Base):
    flow_run_id = StrictString(required=True, validate=validate.Length(min=1, max=36))
    message = StrictString(required=True, validate=validate.Length(max=100_000))
    level = StrictString(
        load_default="INFO", validate=validate.OneOf(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
    )
    name = StrictString(load_default="", validate=validate.Length(max=200))
    timestamp = UTCDateTime(load_default=None, allow_none=True)


class LogBatchSchema(Base):
    logs = fields.List(fields.Nested(LogEntrySchema), required=True, validate=validate.Length(min=1, max=5000))


class AgentRegisterSchema(Base):
    name = StrictString(load_default="agent", validate=NAME)
    backend = StrictString(load_default="", validate=validate.Length(max=100))
    labels = _labels()
    agent_config_id = StrictString(load_default=None, allow_none=True, validate=validate.Length(max=36))
    heartbeat_period = StrictFloat(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, min_inclusive=False, max=86_400),
        metadata={"description": "seconds between the agent's heartbeats; its lease is at least three of them"},
    )


class AgentConfigCreateSchema(Base):
    name = StrictString(required=True, validate=NAME)
    settings = fields.Dict(keys=StrictString(), required=True)


class KeyCreateSchema(Base):
    role = StrictString(required=True, validate=validate.OneOf(["runner", "user", "admin"]))
    name = StrictString(load_default="", validate=validate.Length(max=200))


class Empty(Base):
    pass


# --- query strings --------------------------------------------------------------------------


class PageQuery(Base):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    cursor = fields.String(load_default=None, validate=validate.Length(max=1000))


def _any_case(word: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" for c in word)


# What the server accepts as ``state``: states in any case, separated by commas, blanks around.
_STATE_PART = "[ \\t]*(" + "|".join(_any_case(s.value) for s in State) + ")?[ \\t]*"
STATES_PATTERN = f"^{_STATE_PART}(,{_STATE_PART})*$"


class RunListQuery(PageQuery):
    state = fields.String(
        load_default=None,
        metadata={"description": "comma-separated states, any case", "pattern": STATES_PATTERN},
    )
    flow = fields.String(load_default=None, metadata={"description": "flow id or name"})
    agent_id = fields.String(load_default=None)
    label = fields.String(load_default=None)

    @validates_schema
    def _states(self, data: dict[str, Any], **_: Any) -> None:
        for part in (data.get("state") or "").split(","):
            if part.strip():
                try:
                    State.parse(part)
                except ValueError as exc:
                    raise ValidationError(str(exc), "state") from None


class LogQuery(Base):
    cursor = fields.String(load_default=None, validate=validate.Length(max=1000))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=5000))
