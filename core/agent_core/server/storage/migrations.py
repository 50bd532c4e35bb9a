"""Versioned schema migrations: a database made by any earlier version upgrades in place.

Each migration is frozen once released: it spells out its own tables and DDL rather than
reusing ``schema.py``, which always describes the newest schema.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pendulum
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from agent_core.errors import ConfigError
from agent_core.server.storage.types import UTCDateTime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _v1_initial(conn: Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "tenants",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created", UTCDateTime, nullable=False),
    )
    sa.Table(
        "api_keys",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("revoked", UTCDateTime, nullable=True),
    )
    sa.Table(
        "flows",
        md,
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
    sa.Table(
        "flow_runs",
        md,
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
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_flow_runs_idempotency"),
        sa.Index("ix_flow_runs_queue", "tenant_id", "state", "scheduled_start_time"),
        sa.Index("ix_flow_runs_created", "tenant_id", "created", "id"),
    )
    sa.Table(
        "flow_run_labels",
        md,
        sa.Column("flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("label", sa.String(200), primary_key=True),
    )
    sa.Table(
        "logs",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("flow_run_id", sa.String(36), sa.ForeignKey("flow_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("timestamp", UTCDateTime, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Index("ix_logs_run", "flow_run_id", "id"),
    )
    sa.Table(
        "agents",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("backend", sa.String(100), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("agent_config_id", sa.String(36), nullable=True),
        sa.Column("created", UTCDateTime, nullable=False),
        sa.Column("last_heartbeat", UTCDateTime, nullable=False),
    )
    sa.Table(
        "agent_configs",
        md,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("settings", sa.JSON, nullable=False),
        sa.Column("created", UTCDateTime, nullable=False),
    )
    md.create_all(conn)


def _v2_retries_and_history(conn: Connection) -> None:
    for ddl in (
        "ALTER TABLE flow_runs ADD COLUMN attempt INTEGER DEFAULT 1 NOT NULL",
        "ALTER TABLE flow_runs ADD COLUMN max_retries INTEGER DEFAULT 0 NOT NULL",
        "ALTER TABLE flow_runs ADD COLUMN retry_delay_seconds FLOAT DEFAULT 0 NOT NULL",
    ):
        conn.exec_driver_sql(ddl)
    md = sa.MetaData()
    sa.Table("flow_runs", md, sa.Column("id", sa.String(36), primary_key=True))
    states = sa.Table(
        "flow_run_states",
        md,
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
    states.create(conn)
    # Runs made before the history existed keep their current state as its first entry.
    conn.exec_driver_sql(
        "INSERT INTO flow_run_states (flow_run_id, state, message, version, attempt, agent_id, timestamp) "
        "SELECT id, state, state_message, version, 1, agent_id, state_time FROM flow_runs"
    )


def _v3_unique_agent_names(conn: Connection) -> None:
    # An agent's name is its identity. Registrations racing on PostgreSQL could insert one name
    # twice: the most recently seen keeps it, the others get their id appended.
    rows = conn.exec_driver_sql(
        "SELECT id, tenant_id, name FROM agents ORDER BY tenant_id, name, last_heartbeat DESC"
    ).fetchall()
    seen: set[tuple[str, str]] = set()
    for agent_id, tenant_id, name in rows:
        if (tenant_id, name) in seen:
            conn.execute(
                sa.text("UPDATE agents SET name = :name WHERE id = :id"),
                {"name": f"{name}-{agent_id[:8]}", "id": agent_id},
            )
        seen.add((tenant_id, name))
    conn.exec_driver_sql("CREATE UNIQUE INDEX uq_agents_tenant_name ON agents (tenant_id, name)")


def _v4_agent_leases(conn: Connection) -> None:
    # The lease of each agent (its last heartbeat plus the lease length) is stored, so that the
    # sweep is one indexed comparison on both databases. Agents seen before this version get
    # the default lease of 90 s from their last heartbeat.
    for ddl in (
        "ALTER TABLE agents ADD COLUMN heartbeat_period FLOAT",
        "ALTER TABLE agents ADD COLUMN lease_until TIMESTAMP",
        "ALTER TABLE agents ADD COLUMN lease_expired_at TIMESTAMP",
        "ALTER TABLE agents ADD COLUMN left_at TIMESTAMP",
    ):
        conn.exec_driver_sql(ddl)
    agents = sa.Table(
        "agents",
        sa.MetaData(),
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("last_heartbeat", UTCDateTime, nullable=False),
        sa.Column("lease_until", UTCDateTime, nullable=True),
    )
    for agent_id, seen in conn.execute(sa.select(agents.c.id, agents.c.last_heartbeat)).all():
        conn.execute(agents.update().where(agents.c.id == agent_id).values(lease_until=seen.add(seconds=90)))
    conn.exec_driver_sql("CREATE INDEX ix_agents_lease ON agents (lease_until)")
    conn.exec_driver_sql("CREATE INDEX ix_flow_runs_agent ON flow_runs (agent_id, state)")


def _v5_queue_order_index(conn: Connection) -> None:
    # The queue and the claim read ready runs in (scheduled_start_time, id) order with a limit;
    # an index in exactly that order lets the database stop after the first few instead of
    # sorting every due run on each call. It covers what ix_flow_runs_queue did.
    conn.exec_driver_sql("CREATE INDEX ix_flow_runs_ready ON flow_runs (tenant_id, state, scheduled_start_time, id)")
    conn.exec_driver_sql("DROP INDEX ix_flow_runs_queue")


MIGRATIONS: list[Migration] = [
    Migration(1, "initial schema", _v1_initial),
    Migration(2, "run retries and state history", _v2_retries_and_history),
    Migration(3, "unique agent names per tenant", _v3_unique_agent_names),
    Migration(4, "agent leases and leaving", _v4_agent_leases),
    Migration(5, "queue order index", _v5_queue_order_index),
]

LATEST_VERSION = MIGRATIONS[-1].version

_schema_version = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("applied", UTCDateTime, nullable=False),
)


def current_version(conn: Connection) -> int:
    if not sa.inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(sa.select(sa.func.max(_schema_version.c.version))).scalar() or 0


def upgrade(engine: Engine, target: int | None = None) -> int:
    """Apply every migration above the database's version (up to ``target``); returns the new version.

    Safe to call from several processes at once: the migrations run in one transaction that
    holds the database's write lock, and the version is re-read under it.
    """
    target = LATEST_VERSION if target is None else target
    with engine.connect() as conn:
        conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            if engine.dialect.name == "postgresql":
                # Serialises concurrent first starts; released at commit.
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(73311)")
            _schema_version.create(conn, checkfirst=True)
            version = current_version(conn)
            if version > LATEST_VERSION:
                raise ConfigError(
                    f"the database is at schema version {version}, newer than this agent-core "
                    f"understands ({LATEST_VERSION}): upgrade agent-core"
                )
            for migration in MIGRATIONS:
                if version < migration.version <= target:
                    log.info("applying migration %d: %s", migration.version, migration.description)
                    migration.apply(conn)
                    conn.execute(
                        _schema_version.insert().values(
                            version=migration.version,
                            description=migration.description,
                            applied=pendulum.now("UTC"),
                        )
                    )
                    version = migration.version
    return version
