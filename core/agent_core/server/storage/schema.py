"""The current schema, used by queries. Changes to it need a migration in ``migrations.py``."""

from __future__ import annotations

import sqlalchemy as sa

from agent_core.server.storage.types import UTCDateTime

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied", UTCDateTime, nullable=False),
)

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("revoked", UTCDateTime, nullable=True),
)

flows = sa.Table(
    "flows",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("run_config", sa.JSON, nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.UniqueConstraint("tenant_id", "name", name="uq_flows_tenant_name"),
)

flow_runs = sa.Table(
    "flow_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("flow_id", sa.String(36), sa.ForeignKey("flows.id"), nullable=False),
    sa.Column("flow_version", sa.Integer, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("run_config", sa.JSON, nullable=True),
    sa.Column("scheduled_start_time", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("state_message", sa.Text, nullable=False),
    sa.Column("state_time", UTCDateTime, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("agent_id", sa.String(36), nullable=True),
    sa.Column("deployment", sa.JSON, nullable=True),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("start_time", UTCDateTime, nullable=True),
    sa.Column("end_time", UTCDateTime, nullable=True),
    # added by migration 2
    sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
    sa.Column("max_retries", sa.Integer, nullable=False, server_default="0"),
    sa.Column("retry_delay_seconds", sa.Float, nullable=False, server_default="0"),
    sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_flow_runs_idempotency"),
    # changed by migration 5 (was ix_flow_runs_queue, without id): the queue's order
    sa.Index("ix_flow_runs_ready", "tenant_id", "state", "scheduled_start_time", "id"),
    sa.Index("ix_flow_runs_created", "tenant_id", "created", "id"),
    # added by migration 4: the lease sweep looks runs up by agent and state
    sa.Index("ix_flow_runs_agent", "agent_id", "state"),
)

# One row per label, so that the queue's subset test is a plain NOT EXISTS on both databases.
flow_run_labels = sa.Table(
    "flow_run_labels",
    metadata,
    sa.Column("flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("label", sa.String(200), primary_key=True),
)

# Added by migration 2.
flow_run_states = sa.Table(
    "flow_run_states",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("agent_id", sa.String(36), nullable=True),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Index("ix_flow_run_states_run", "flow_run_id", "id"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("level", sa.String(16), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("ix_logs_run", "flow_run_id", "id"),
)

agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("backend", sa.String(100), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("agent_config_id", sa.String(36), nullable=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("last_heartbeat", UTCDateTime, nullable=False),
    # added by migration 4: the lease (see server/leases.py)
    sa.Column("heartbeat_period", sa.Float, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("lease_expired_at", UTCDateTime, nullable=True),
    sa.Column("left_at", UTCDateTime, nullable=True),
    # added by migration 3
    sa.Index("uq_agents_tenant_name", "tenant_id", "name", unique=True),
    # added by migration 4
    sa.Index("ix_agents_lease", "lease_until"),
)

agent_configs = sa.Table(
    "agent_configs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("created", UTCDateTime, nullable=False),
)
