"""Resolving a run's run config into the type the agent's backend accepts.

Besides each backend's own fields, every run-config type (``universal``, ``local``,
``docker``, ``ecs``, a third party's) accepts the *core* keys of :data:`CORE_RUN_CONFIG_KEYS`.
Core handles them (:func:`core_options`) and removes them before the backend's schema loads
the rest, so no backend has to know them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields

from agent_core.errors import RunConfigMismatch, describe_problems, schema_names

UNIVERSAL = "universal"

#: Keys every run-config type accepts, handled by core: ``timeout_seconds`` (a positive
#: number: the run's maximum runtime) and ``ship_output`` (a bool that may only turn the
#: workload's output off, see ``docs/workload.md``).
CORE_RUN_CONFIG_KEYS = ("timeout_seconds", "ship_output")


class RunConfigSchema(Schema):
    """The base of a backend's run-config schema: the fields of a ``universal`` run config.

    A ``universal`` run config converts to any backend's type with its ``env`` and ``labels``
    (:func:`resolve_run_config`), so every backend's schema takes both, meaning the same:
    ``env`` is added to the workload's environment, a ``null`` value removing the variable
    (docs/workload.md); ``labels`` are agent labels. A backend subclasses this schema and adds
    its own fields.
    """

    class Meta:
        unknown = RAISE

    env = fields.Dict(
        keys=fields.String(),
        values=fields.String(allow_none=True),
        load_default=dict,
        metadata={"description": "added to the workload's environment; null removes a variable"},
    )
    labels = fields.List(fields.String(), load_default=list, metadata={"description": "agent labels"})


@dataclass(frozen=True)
class CoreRunOptions:
    """What a run config says through the core keys; the defaults are what an absent key means."""

    timeout_seconds: float | None = None
    ship_output: bool = True


def core_options(run_config: dict[str, Any] | None) -> CoreRunOptions:
    """The core keys of ``run_config`` (any type), checked.

    ``null`` is the same as leaving a key out.

    :raise RunConfigMismatch: a core key has an invalid value (the message names the key).
    """
    data = run_config or {}
    timeout = data.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout) or timeout <= 0
    ):
        raise RunConfigMismatch(
            f"invalid run config: timeout_seconds must be a positive number of seconds, not {timeout!r}"
        )
    ship_output = data.get("ship_output")
    if ship_output is not None and not isinstance(ship_output, bool):
        raise RunConfigMismatch(f"invalid run config: ship_output must be true or false, not {ship_output!r}")
    return CoreRunOptions(
        timeout_seconds=float(timeout) if timeout is not None else None,
        ship_output=True if ship_output is None else ship_output,
    )


def resolve_run_config(run_config: dict[str, Any] | None, backend: str, schema: Schema | None) -> Any:
    """The run config loaded through the backend's schema.

    ``None`` gives the backend's defaults; ``universal`` keeps only its ``env`` and ``labels``;
    the backend's own type is loaded as is; anything else is a :class:`RunConfigMismatch`.
    The core keys are checked (:func:`core_options`) and never reach the backend's schema.
    """
    core_options(run_config)
    data = {key: value for key, value in (run_config or {}).items() if key not in CORE_RUN_CONFIG_KEYS}
    kind = data.pop("type", None)
    if run_config is None:
        data = {}
    elif kind == UNIVERSAL:
        data = {key: data[key] for key in ("env", "labels") if key in data}
    elif kind != backend:
        raise RunConfigMismatch(
            f"the run has a run config of type {kind!r}, but this agent's backend {backend!r} "
            f"accepts only {backend!r} (or {UNIVERSAL!r})"
        )
    if schema is None:
        return {"type": backend, **data}
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise RunConfigMismatch(
            f"invalid {backend!r} run config: {describe_problems(exc.normalized_messages(), schema_names(schema))}"
        ) from None
