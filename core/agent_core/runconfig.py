"""Resolving a run's run config into the type the agent's backend accepts."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError

from agent_core.errors import RunConfigMismatch, describe_problems

UNIVERSAL = "universal"


def resolve_run_config(run_config: dict[str, Any] | None, backend: str, schema: Schema | None) -> Any:
    """The run config loaded through the backend's schema.

    ``None`` gives the backend's defaults; ``universal`` keeps only its ``env`` and ``labels``;
    the backend's own type is loaded as is; anything else is a :class:`RunConfigMismatch`.
    """
    data = dict(run_config or {})
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
            f"invalid {backend!r} run config: {describe_problems(exc.normalized_messages())}"
        ) from None
