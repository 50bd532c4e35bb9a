"""The ``local`` run-config type and the local backend's settings."""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields


class LocalRunConfigSchema(Schema):
    """``{"type": "local", "command": ..., "working_dir": ..., "env": {...}, "labels": [...]}``.

    The core keys (``timeout_seconds``, ``ship_output``) are handled by core and never reach
    this schema.
    """

    class Meta:
        unknown = RAISE

    command = fields.String(load_default=None, allow_none=True, metadata={"description": "replaces the flow's command"})
    working_dir = fields.String(load_default=None, allow_none=True)
    env = fields.Dict(
        keys=fields.String(),
        values=fields.String(allow_none=True),
        load_default=dict,
        metadata={"description": "added to the workload's environment; null removes a variable"},
    )
    labels = fields.List(fields.String(), load_default=list)


class LocalSettingsSchema(Schema):
    """``[backends.local]``: where run directories live and how output is shown."""

    class Meta:
        unknown = RAISE

    work_dir = fields.String(
        load_default=None, allow_none=True, metadata={"description": "default $AGENT_HOME/local-runs"}
    )
    import_paths = fields.List(
        fields.String(), load_default=list, metadata={"description": "on PYTHONPATH after the working directory"}
    )
    show_flow_logs = fields.Boolean(
        load_default=False, metadata={"description": "echo workload output to the agent's log"}
    )
    retention_hours = fields.Float(
        load_default=24.0, metadata={"description": "keep finished run directories this long"}
    )
    inherit_env = fields.Boolean(load_default=True, metadata={"description": "start from the agent's own environment"})
