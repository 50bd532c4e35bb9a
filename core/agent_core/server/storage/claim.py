"""The claim on PostgreSQL as one statement: lock, change, record and answer in one round trip.

``POST /api/queue`` with ``claim: true`` is the agents' hot path. On PostgreSQL it is a single
statement run outside an explicit transaction (one statement is atomic by itself), so a claim
costs one round trip instead of a BEGIN, four statements and a COMMIT:

- ``picked`` locks up to ``limit`` ready runs due now, oldest first, skipping the rows other
  claims hold (``FOR UPDATE SKIP LOCKED``): racing agents neither wait for nor conflict with
  each other;
- ``claimed`` writes what the version-checked change to Submitted writes (state, message,
  time, version + 1, agent), still only where the run is Scheduled;
- ``history`` inserts the state-history entry of each claimed run;
- the answer is the claimed runs, then the ready runs due later (up to ``before``), unclaimed,
  for the caller to trim to its limit.

The statement is built once; it is compiled once and cached by SQLAlchemy.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from agent_core.server.storage import schema as t
from agent_core.server.storage.types import UTCDateTime
from agent_core.states import State

_COLUMNS = [c.name for c in t.flow_runs.c]


def _cols(alias: str) -> str:
    return ", ".join(f"{alias}.{name}" for name in _COLUMNS)


# A run is ready for an agent when it is Scheduled and has no label outside the agent's.
_READY = (
    f"r.tenant_id = :tenant_id AND r.state = '{State.SCHEDULED.value}' AND NOT EXISTS ("
    "SELECT 1 FROM flow_run_labels l WHERE l.flow_run_id = r.id AND l.label <> ALL(:labels))"
)

_SQL = f"""
WITH picked AS (
    SELECT r.id FROM flow_runs r
    WHERE {_READY} AND r.scheduled_start_time <= :stamp
    ORDER BY r.scheduled_start_time, r.id
    LIMIT :limit
    FOR UPDATE OF r SKIP LOCKED
), claimed AS (
    UPDATE flow_runs r
    SET state = '{State.SUBMITTED.value}', state_message = :message, state_time = :stamp,
        version = r.version + 1, agent_id = :agent_id
    FROM picked
    WHERE r.id = picked.id AND r.state = '{State.SCHEDULED.value}'
    RETURNING {_cols("r")}
), history AS (
    INSERT INTO flow_run_states (flow_run_id, state, message, version, attempt, agent_id, timestamp)
    SELECT c.id, c.state, c.state_message, c.version, c.attempt, c.agent_id, c.state_time FROM claimed c
)
SELECT 0 AS part, {_cols("c")}, f.name AS flow_name
FROM claimed c JOIN flows f ON f.id = c.flow_id
UNION ALL
(
    SELECT 1 AS part, {_cols("r")}, f.name AS flow_name
    FROM flow_runs r JOIN flows f ON f.id = r.flow_id
    WHERE {_READY} AND r.scheduled_start_time > :stamp AND r.scheduled_start_time <= :before
    ORDER BY r.scheduled_start_time, r.id
    LIMIT :limit
)
ORDER BY part, scheduled_start_time, id
"""

CLAIM = (
    sa.text(_SQL)
    .bindparams(
        sa.bindparam("tenant_id", type_=sa.String),
        sa.bindparam("agent_id", type_=sa.String),
        sa.bindparam("message", type_=sa.Text),
        sa.bindparam("stamp", type_=UTCDateTime),
        sa.bindparam("before", type_=UTCDateTime),
        sa.bindparam("labels", type_=postgresql.ARRAY(sa.String)),
        sa.bindparam("limit", type_=sa.Integer),
    )
    .columns(sa.column("part", sa.Integer), *t.flow_runs.c, sa.column("flow_name", sa.String))
)
