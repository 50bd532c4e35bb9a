"""Every read and write the API makes, as plain functions of a tenant and JSON-able dicts.

All writes go through :meth:`Store._write`, one short transaction each; a state change is a
compare-and-set on the run's ``version`` inside it, which is how two agents never claim the
same run, on SQLite and on PostgreSQL alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pendulum
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from agent_core.errors import BadRequest, IllegalTransition, NotFound, StateUpdateConflict
from agent_core.server.storage import schema as t
from agent_core.server.storage.claim import CLAIM
from agent_core.states import FINAL_STATES, State, can_transition

# The states in which the agent holding a run may record its deployment.
DEPLOYABLE_STATES = (State.SUBMITTED, State.RUNNING, State.CANCELLING)

DEFAULT_TENANT = "default"
ROLES = ("runner", "user", "admin")
KEY_PREFIX = "agk_"
DEFAULT_LEASE_SECONDS = 180.0
# PostgreSQL's channel for "a run became ready" (see server/wakeups.py); payloads stay below
# its 8,000-byte limit.
READY_CHANNEL = "agent_queue_ready"
_MAX_NOTIFY_PAYLOAD = 7000
# Unique-name races (two servers registering one new flow) are retried this often.
_UNIQUE_RETRIES = 10
# Integer columns are 32-bit on PostgreSQL: a cursor beyond that is not one we issued.
_MAX_INT = 2**31 - 1

ReadyListener = Callable[[str, "list[str] | None"], None]


def _run_select() -> sa.Select[Any]:
    """A run's row with its flow's name: what :meth:`Store._run_dict` reads."""
    return sa.select(
        t.flow_runs,
        t.flows.c.name.label("flow_name"),
    ).join(t.flows, t.flows.c.id == t.flow_runs.c.flow_id)


# The statements of the hot path (claim, deployment, state changes), built once with bound
# parameters. SQLAlchemy caches a statement's compiled form, but building the statement and
# computing its cache key anew on every call cost more than SQLite took to run it. The
# parameters are prefixed where a column has the same name (the SET clause of an update takes
# its columns from the parameters given to execute).
_RUN_BY_ID = _run_select().where(
    (t.flow_runs.c.id == sa.bindparam("p_id")) & (t.flow_runs.c.tenant_id == sa.bindparam("p_tenant"))
)
_UPDATE_AT_VERSION = t.flow_runs.update().where(
    (t.flow_runs.c.id == sa.bindparam("p_id")) & (t.flow_runs.c.version == sa.bindparam("p_version"))
)
_UPDATE_RUN = t.flow_runs.update().where(
    (t.flow_runs.c.id == sa.bindparam("p_id")) & (t.flow_runs.c.tenant_id == sa.bindparam("p_tenant"))
)
_INSERT_STATE = t.flow_run_states.insert()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the tenant whose data they see and the role that bounds what they do."""

    tenant_id: str
    role: str
    key_id: str | None = None


def hash_key(secret: str) -> str:
    # Keys are 256 random bits, so a plain digest is enough (no need for a slow KDF).
    return hashlib.sha256(secret.encode()).hexdigest()


def now() -> pendulum.DateTime:
    return pendulum.now("UTC")


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The parts of a cursor, each of the given type (a bool is not an int), or a 400."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        parts = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        parts = None
    if (
        not isinstance(parts, list)
        or len(parts) != len(types)
        or not all(type(part) is kind for part, kind in zip(parts, types, strict=True))
        or any(isinstance(part, int) and not 0 <= part <= _MAX_INT for part in parts)
    ):
        raise BadRequest("Invalid cursor", {"cursor": "not a cursor this server issued; start without one"})
    return parts


def _cursor_time(text: str) -> pendulum.DateTime:
    try:
        parsed = pendulum.parse(text, exact=True)
        if isinstance(parsed, pendulum.DateTime):
            return parsed.in_timezone("UTC")
    except (ValueError, OverflowError, pendulum.parsing.exceptions.ParserError):
        pass
    raise BadRequest("Invalid cursor", {"cursor": "not a cursor this server issued; start without one"})


def _iso(value: pendulum.DateTime | None) -> str | None:
    return None if value is None else value.isoformat()


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self._ready_listeners: list[ReadyListener] = []
        self._agent_names: dict[tuple[str, str], str] = {}

    def add_ready_listener(self, listener: ReadyListener) -> None:
        """Call ``listener(tenant_id, labels)`` after each commit that made a run ready (created,
        put back to Scheduled, retried); ``labels`` None means "any run of the tenant"."""
        self._ready_listeners.append(listener)

    def remove_ready_listener(self, listener: ReadyListener) -> None:
        if listener in self._ready_listeners:
            self._ready_listeners.remove(listener)

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        ready: list[tuple[str, list[str] | None]] = []
        with self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            conn.info["agent_ready"] = ready
            try:
                with conn.begin():
                    yield conn
            finally:
                conn.info.pop("agent_ready", None)
        for tenant_id, labels in ready:
            for listener in self._ready_listeners:
                listener(tenant_id, labels)

    def _mark_ready(self, conn: Connection, tenant_id: str, labels: list[str]) -> None:
        """Note that a run became ready: waiters here are woken after the commit, and on
        PostgreSQL every server listening is told at the commit (NOTIFY is transactional)."""
        conn.info["agent_ready"].append((tenant_id, list(labels)))
        if self.is_postgres:
            payload = json.dumps({"t": tenant_id, "l": list(labels)})
            if len(payload.encode()) > _MAX_NOTIFY_PAYLOAD:
                payload = json.dumps({"t": tenant_id})
            conn.execute(sa.select(sa.func.pg_notify(READY_CHANNEL, payload)))

    @contextmanager
    def _autocommit(self) -> Iterator[Connection]:
        """A connection without an explicit transaction, for a single statement (atomic by itself):
        on PostgreSQL this saves the round trips of BEGIN and COMMIT."""
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        if self.is_postgres:
            # Under READ COMMITTED each statement reads its own snapshot, in a transaction or
            # not, so a read gains nothing from one but the round trips of BEGIN and COMMIT.
            with self._autocommit() as conn:
                yield conn
            return
        # On SQLite the transaction makes the reads of one call see one snapshot.
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # --- tenants and keys -----------------------------------------------------------------

    def ensure_tenant(self, name: str = DEFAULT_TENANT) -> str:
        return self._retry_unique(lambda: self._ensure_tenant(name))

    def _retry_unique(self, write: Callable[[], Any]) -> Any:
        """Run ``write`` (one transaction), again when a concurrent one inserted the same unique name
        or moved the row on first: the retry then sees that row and updates it instead."""
        for attempt in range(_UNIQUE_RETRIES):
            try:
                return write()
            except (sa.exc.IntegrityError, _ConcurrentUpdate):
                if attempt == _UNIQUE_RETRIES - 1:
                    raise StateUpdateConflict(
                        "Concurrent update", "the same object kept changing concurrently; try again"
                    ) from None
        raise AssertionError("unreachable")

    def _ensure_tenant(self, name: str) -> str:
        with self._write() as conn:
            row = conn.execute(sa.select(t.tenants.c.id).where(t.tenants.c.name == name)).first()
            if row:
                return row.id
            tenant_id = name if name == DEFAULT_TENANT else str(uuid.uuid4())
            conn.execute(t.tenants.insert().values(id=tenant_id, name=name, created=now()))
            return tenant_id

    def create_key(self, tenant_id: str, role: str, name: str = "") -> tuple[dict[str, Any], str]:
        """A new key; the secret is returned here and never again (only its hash is kept)."""
        if role not in ROLES:
            raise BadRequest("Invalid role", {"role": f"must be one of {', '.join(ROLES)}"})
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "name": name or role,
            "role": role,
            "prefix": secret[: len(KEY_PREFIX) + 6],
            "key_hash": hash_key(secret),
            "created": now(),
            "revoked": None,
        }
        with self._write() as conn:
            conn.execute(t.api_keys.insert().values(**row))
        return self._key_dict(row), secret

    def list_keys(self, tenant_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.api_keys).where(t.api_keys.c.tenant_id == tenant_id).order_by(t.api_keys.c.created)
            ).mappings()
            return [self._key_dict(r) for r in rows]

    def revoke_key(self, tenant_id: str, key_id: str) -> dict[str, Any]:
        with self._write() as conn:
            cond = (t.api_keys.c.id == key_id) & (t.api_keys.c.tenant_id == tenant_id)
            row = conn.execute(sa.select(t.api_keys).where(cond)).mappings().first()
            if row is None:
                raise NotFound("API key not found", {"id": key_id})
            if row["revoked"] is None:
                conn.execute(t.api_keys.update().where(cond).values(revoked=now()))
            return self._key_dict({**row, "revoked": row["revoked"] or now()})

    def authenticate(self, secret: str) -> Principal | None:
        digest = hash_key(secret)
        with self._read() as conn:
            row = conn.execute(sa.select(t.api_keys).where(t.api_keys.c.key_hash == digest)).mappings().first()
        # The lookup is by digest; the final comparison takes the same time whatever differs.
        if row is None or not hmac.compare_digest(row["key_hash"], digest) or row["revoked"] is not None:
            return None
        return Principal(tenant_id=row["tenant_id"], role=row["role"], key_id=row["id"])

    def count_active_keys(self) -> int:
        with self._read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).select_from(t.api_keys).where(t.api_keys.c.revoked.is_(None))
            ).scalar_one()

    def tenant_name(self, tenant_id: str) -> str:
        with self._read() as conn:
            name = conn.execute(sa.select(t.tenants.c.name).where(t.tenants.c.id == tenant_id)).scalar()
        return name or tenant_id

    @staticmethod
    def _key_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "role": row["role"],
            "prefix": row["prefix"],
            "created": _iso(row["created"]),
            "revoked": _iso(row["revoked"]),
        }

    # --- flows ----------------------------------------------------------------------------

    def register_flow(self, tenant_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create a flow or update its definition; a changed definition bumps its version.

        Returns the flow and whether anything was written.
        """
        return self._retry_unique(lambda: self._register_flow(tenant_id, data))

    def _register_flow(self, tenant_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        definition = {
            "command": data["command"],
            "description": data.get("description", ""),
            "labels": sorted(set(data.get("labels") or [])),
            "run_config": data.get("run_config"),
        }
        with self._write() as conn:
            cond = (t.flows.c.tenant_id == tenant_id) & (t.flows.c.name == data["name"])
            query = sa.select(t.flows).where(cond)
            if self.is_postgres:
                # Concurrent updates of one flow queue here instead of failing their version check.
                query = query.with_for_update()
            row = conn.execute(query).mappings().first()
            stamp = now()
            if row is None:
                values = {
                    "id": str(uuid.uuid4()),
                    "tenant_id": tenant_id,
                    "name": data["name"],
                    "version": 1,
                    "created": stamp,
                    "updated": stamp,
                    **definition,
                }
                conn.execute(t.flows.insert().values(**values))
                return self._flow_dict(values), True
            if all(row[k] == v for k, v in definition.items()):
                return self._flow_dict(row), False
            values = {**row, **definition, "version": row["version"] + 1, "updated": stamp}
            # Compare-and-set on the version: two updates racing on PostgreSQL both bump it.
            result = conn.execute(
                t.flows.update()
                .where(cond & (t.flows.c.version == row["version"]))
                .values(**definition, version=values["version"], updated=stamp)
            )
            if result.rowcount != 1:
                raise _ConcurrentUpdate()
            return self._flow_dict(values), True

    def get_flow(self, tenant_id: str, id_or_name: str) -> dict[str, Any]:
        with self._read() as conn:
            return self._flow_dict(self._flow_row(conn, tenant_id, id_or_name))

    def _flow_row(self, conn: Connection, tenant_id: str, id_or_name: str) -> RowMapping:
        row = (
            conn.execute(
                sa.select(t.flows).where(
                    (t.flows.c.tenant_id == tenant_id) & ((t.flows.c.id == id_or_name) | (t.flows.c.name == id_or_name))
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound("Flow not found", {"flow": f"no flow with id or name {id_or_name!r}"})
        return row

    def list_flows(self, tenant_id: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        query = sa.select(t.flows).where(t.flows.c.tenant_id == tenant_id)
        if cursor:
            (after,) = decode_cursor(cursor, str)
            query = query.where(t.flows.c.name > after)
        query = query.order_by(t.flows.c.name).limit(limit + 1)
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._flow_dict(r) for r in rows], encode_cursor(rows[-1]["name"]) if more else None

    @staticmethod
    def _flow_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "version": row["version"],
            "command": row["command"],
            "description": row["description"],
            "labels": list(row["labels"]),
            "run_config": row["run_config"],
            "created": _iso(row["created"]),
            "updated": _iso(row["updated"]),
        }

    # --- flow runs ------------------------------------------------------------------------

    def create_run(self, tenant_id: str, data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """A new Scheduled run, or the existing one for the same idempotency key.

        Returns the run and whether it was created by this call.
        """
        key = data.get("idempotency_key")
        if key:
            existing = self._run_by_idempotency_key(tenant_id, key)
            if existing:
                return existing, False
        flow_ref = data.get("flow_id") or data.get("flow_name")
        with self._write() as conn:
            flow = self._flow_row(conn, tenant_id, flow_ref)
            if data.get("flow_id") and flow["id"] != data["flow_id"]:
                raise NotFound("Flow not found", {"flow_id": f"no flow with id {data['flow_id']!r}"})
            stamp = now()
            labels = data.get("labels")
            run_id = str(uuid.uuid4())
            values = {
                "id": run_id,
                "tenant_id": tenant_id,
                "flow_id": flow["id"],
                "flow_version": flow["version"],
                "command": flow["command"],
                "name": data.get("name") or f"{flow['name']}-{run_id[:8]}",
                "parameters": data.get("parameters") or {},
                "labels": sorted(set(flow["labels"] if labels is None else labels)),
                "run_config": data["run_config"] if data.get("run_config") is not None else flow["run_config"],
                "scheduled_start_time": data.get("scheduled_start_time") or stamp,
                "state": State.SCHEDULED.value,
                "state_message": "Created",
                "state_time": stamp,
                "version": 1,
                "idempotency_key": key,
                "created": stamp,
                "attempt": 1,
                "max_retries": data.get("max_retries", 0),
                "retry_delay_seconds": data.get("retry_delay_seconds", 0.0),
            }
            try:
                with conn.begin_nested():
                    conn.execute(t.flow_runs.insert().values(**values))
            except sa.exc.IntegrityError:
                if not key:
                    raise
                created = False
            else:
                created = True
                if values["labels"]:
                    conn.execute(
                        t.flow_run_labels.insert(),
                        [{"flow_run_id": run_id, "label": x} for x in values["labels"]],
                    )
                self._record_state(conn, values, State.SCHEDULED, "Created", None)
                self._mark_ready(conn, tenant_id, values["labels"])
        if not created:
            # Another request with the same key won the race; answer with its run.
            existing = self._run_by_idempotency_key(tenant_id, key)
            assert existing is not None
            return existing, False
        return self.get_run(tenant_id, run_id), True

    def _run_by_idempotency_key(self, tenant_id: str, key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            row = (
                conn.execute(
                    _run_select().where((t.flow_runs.c.tenant_id == tenant_id) & (t.flow_runs.c.idempotency_key == key))
                )
                .mappings()
                .first()
            )
        return None if row is None else self._run_dict(row)

    def get_run(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        with self._read() as conn:
            return self._run_dict(self._run_row(conn, tenant_id, run_id))

    @staticmethod
    def _run_row(conn: Connection, tenant_id: str, run_id: str) -> RowMapping:
        row = conn.execute(_RUN_BY_ID, {"p_id": run_id, "p_tenant": tenant_id}).mappings().first()
        if row is None:
            raise NotFound("Flow run not found", {"id": run_id})
        return row

    def list_runs(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        states: list[str] | None = None,
        flow: str | None = None,
        agent_id: str | None = None,
        label: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first, in pages of ``limit``; ``next_cursor`` is None on the last page."""
        r = t.flow_runs
        query = _run_select().where(r.c.tenant_id == tenant_id)
        if states:
            query = query.where(r.c.state.in_(states))
        if flow:
            query = query.where((t.flows.c.name == flow) | (t.flows.c.id == flow))
        if agent_id:
            query = query.where(r.c.agent_id == agent_id)
        if label:
            query = query.where(
                sa.exists().where((t.flow_run_labels.c.flow_run_id == r.c.id) & (t.flow_run_labels.c.label == label))
            )
        if cursor:
            created_iso, last_id = decode_cursor(cursor, str, str)
            created = _cursor_time(created_iso)
            query = query.where((r.c.created < created) | ((r.c.created == created) & (r.c.id < last_id)))
        query = query.order_by(r.c.created.desc(), r.c.id.desc()).limit(limit + 1)
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1]["created"].isoformat(), rows[-1]["id"]) if more else None
        return [self._run_dict(row) for row in rows], next_cursor

    def set_state(
        self,
        tenant_id: str,
        run_id: str,
        *,
        version: int,
        state: State,
        message: str = "",
        agent_id: str | None = None,
        deployment: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Move a run to ``state`` if it is still at ``version``: the claim and every later step.

        A stale version is a :class:`StateUpdateConflict`; a move the state machine forbids an
        :class:`IllegalTransition`. A Failed run with retries left is scheduled again.
        ``deployment`` (with a change to Running) is recorded in the same transaction, on the
        terms of :meth:`set_deployment`.
        """
        with self._write() as conn:
            row = self._run_row(conn, tenant_id, run_id)
            if deployment is not None:
                self._check_holder(row, agent_id)
            if row["version"] != version:
                raise StateUpdateConflict(
                    "State update failed",
                    f"run {run_id} is at version {row['version']} ({row['state']}), not {version}",
                )
            run = dict(row)
            if deployment is not None:
                conn.execute(_UPDATE_RUN, {"p_id": run_id, "p_tenant": tenant_id, "deployment": deployment})
                run["deployment"] = deployment
            # `run` is updated with every column written: the answer, without reading it back.
            self._change_state(conn, run, state, message, agent_id)
            return self._run_dict(run)

    def _change_state(
        self,
        conn: Connection,
        run: dict[str, Any],
        state: State,
        message: str,
        agent_id: str | None,
        *,
        force_agent: bool = False,
    ) -> None:
        """The version-checked change of ``run`` (as read, at its version) to ``state``, then a
        retry if a Failed run has retries left: the one path every state change takes."""
        current = State(run["state"])
        if not can_transition(current, state):
            raise IllegalTransition("Illegal transition", f"a {current.value} run cannot become {state.value}")
        self._apply_state(conn, run, state, message, agent_id, force_agent=force_agent)
        # A run someone asked to cancel is not retried, whatever its retries say.
        if state == State.FAILED and current != State.CANCELLING and run["attempt"] <= run["max_retries"]:
            retry_at = now().add(seconds=run["retry_delay_seconds"])
            run["attempt"] += 1
            run["scheduled_start_time"] = retry_at
            run["deployment"] = None
            self._apply_state(
                conn,
                run,
                State.SCHEDULED,
                f"Retry {run['attempt'] - 1} of {run['max_retries']} at {retry_at.to_iso8601_string()}",
                None,
                force_agent=True,
            )

    @staticmethod
    def _state_values(run: dict[str, Any], state: State, message: str, stamp: pendulum.DateTime) -> dict[str, Any]:
        """The columns a change of ``run`` to ``state`` writes, the agent aside."""
        values: dict[str, Any] = {
            "state": state.value,
            "state_message": message,
            "state_time": stamp,
            "version": run["version"] + 1,
        }
        if state == State.RUNNING and run.get("start_time") is None:
            values["start_time"] = stamp
        if state in FINAL_STATES:
            values["end_time"] = stamp
        if state == State.SCHEDULED:
            values.update(
                attempt=run["attempt"],
                scheduled_start_time=run["scheduled_start_time"],
                deployment=None,
                start_time=None,
                end_time=None,
            )
        return values

    def _apply_state(
        self,
        conn: Connection,
        run: dict[str, Any],
        state: State,
        message: str,
        agent_id: str | None,
        *,
        force_agent: bool = False,
    ) -> None:
        values = self._state_values(run, state, message, now())
        if state == State.SUBMITTED or force_agent:
            values["agent_id"] = agent_id
        result = conn.execute(_UPDATE_AT_VERSION, {"p_id": run["id"], "p_version": run["version"], **values})
        if result.rowcount != 1:
            # Someone changed the run between our read and this write (PostgreSQL, READ COMMITTED).
            raise StateUpdateConflict("State update failed", f"run {run['id']} changed concurrently")
        run.update(values)
        self._record_state(conn, run, state, message, values.get("agent_id", run.get("agent_id")))
        if state == State.SCHEDULED:
            self._mark_ready(conn, run["tenant_id"], list(run["labels"]))

    @staticmethod
    def _record_state(conn: Connection, run: dict[str, Any], state: State, message: str, agent_id: str | None) -> None:
        conn.execute(
            _INSERT_STATE,
            {
                "flow_run_id": run["id"],
                "state": state.value,
                "message": message,
                "version": run["version"],
                "attempt": run["attempt"],
                "agent_id": agent_id,
                "timestamp": now(),
            },
        )

    def set_deployment(
        self, tenant_id: str, run_id: str, deployment: dict[str, Any], agent_id: str | None = None
    ) -> dict[str, Any]:
        """Record what a backend started for the run; does not change the state or version.

        From an agent (``agent_id``), only while that agent holds the run (Submitted, Running or
        Cancelling, claimed by it): a deploy that returns after the run was handed back or
        recovered from a lapsed lease must not write its deployment over another attempt's.
        """
        with self._write() as conn:
            row = self._run_row(conn, tenant_id, run_id)
            self._check_holder(row, agent_id)
            conn.execute(_UPDATE_RUN, {"p_id": run_id, "p_tenant": tenant_id, "deployment": deployment})
            return self._run_dict({**row, "deployment": deployment})

    @staticmethod
    def _check_holder(row: RowMapping, agent_id: str | None) -> None:
        """A deployment from ``agent_id`` is refused unless that agent still holds the run."""
        state = State(row["state"])
        if agent_id is not None and (row["agent_id"] != agent_id or state not in DEPLOYABLE_STATES):
            holder = f"agent {row['agent_id']}" if row["agent_id"] else "no agent"
            raise StateUpdateConflict(
                "Deployment refused",
                f"run {row['id']} is no longer held by agent {agent_id} (it is {state.value}, held by {holder}): "
                "stop what was started for it",
            )

    def cancel_run(self, tenant_id: str, run_id: str, message: str = "") -> dict[str, Any]:
        """Scheduled runs are Cancelled at once; deployed ones go to Cancelling for their agent."""
        for _ in range(20):
            run = self.get_run(tenant_id, run_id)
            current = State(run["state"]["type"])
            if current == State.CANCELLING:
                return run
            if current in FINAL_STATES:
                raise IllegalTransition(
                    "Illegal transition",
                    f"run {run_id} already finished ({current.value}); nothing to cancel",
                )
            target = State.CANCELLED if current == State.SCHEDULED else State.CANCELLING
            try:
                return self.set_state(
                    tenant_id,
                    run_id,
                    version=run["version"],
                    state=target,
                    message=message or "Cancel requested",
                )
            except StateUpdateConflict:
                continue  # it moved on meanwhile: look again
        raise StateUpdateConflict("State update failed", f"run {run_id} keeps changing; try again")

    def state_history(self, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            self._run_row(conn, tenant_id, run_id)
            rows = conn.execute(
                sa.select(t.flow_run_states)
                .where(t.flow_run_states.c.flow_run_id == run_id)
                .order_by(t.flow_run_states.c.id)
            ).mappings()
            return [
                {
                    "type": r["state"],
                    "message": r["message"],
                    "version": r["version"],
                    "attempt": r["attempt"],
                    "agent_id": r["agent_id"],
                    "timestamp": _iso(r["timestamp"]),
                }
                for r in rows
            ]

    def prune_runs(
        self, tenant_id: str, *, before: pendulum.DateTime, states: list[str], dry_run: bool = False
    ) -> dict[str, Any]:
        """Delete the runs in final ``states`` that ended before ``before``, with their logs, labels and history.

        Unfinished runs are never touched: ``states`` must be final. A run's end is its
        ``end_time``, else its last state change (a run cancelled before it started has none).
        """
        assert all(State(s).is_final for s in states), states
        r = t.flow_runs
        ended = sa.func.coalesce(r.c.end_time, r.c.state_time)
        doomed = (
            sa.select(r.c.id).where((r.c.tenant_id == tenant_id) & r.c.state.in_(states) & (ended < before))
        ).scalar_subquery()
        with self._write() as conn:
            runs = conn.execute(sa.select(sa.func.count()).select_from(r).where(r.c.id.in_(doomed))).scalar_one()
            logs = conn.execute(
                sa.select(sa.func.count()).select_from(t.logs).where(t.logs.c.flow_run_id.in_(doomed))
            ).scalar_one()
            if not dry_run and runs:
                # Children first: SQLite enforces no ON DELETE CASCADE unless asked to.
                for child in (t.logs, t.flow_run_states, t.flow_run_labels):
                    conn.execute(child.delete().where(child.c.flow_run_id.in_(doomed)))
                conn.execute(r.delete().where(r.c.id.in_(doomed)))
        return {"runs": runs, "logs": logs, "states": states, "before": _iso(before), "dry_run": dry_run}

    @staticmethod
    def _ready(tenant_id: str, labels: list[str]) -> sa.ColumnElement[bool]:
        """Scheduled runs of the tenant whose labels are a subset of ``labels``."""
        r = t.flow_runs
        foreign_label = sa.exists().where(
            (t.flow_run_labels.c.flow_run_id == r.c.id) & t.flow_run_labels.c.label.not_in(labels)
        )
        return (r.c.tenant_id == tenant_id) & (r.c.state == State.SCHEDULED.value) & ~foreign_label

    def queue(self, tenant_id: str, labels: list[str], before: pendulum.DateTime, limit: int) -> list[dict[str, Any]]:
        """Scheduled runs due before ``before`` whose labels are a subset of ``labels``, oldest first."""
        with self._read() as conn:
            return self._queued(conn, tenant_id, labels, None, before, limit)

    def _queued(
        self,
        conn: Connection,
        tenant_id: str,
        labels: list[str],
        after: pendulum.DateTime | None,
        before: pendulum.DateTime,
        limit: int,
    ) -> list[dict[str, Any]]:
        r = t.flow_runs
        cond = self._ready(tenant_id, labels) & (r.c.scheduled_start_time <= before)
        if after is not None:
            cond = cond & (r.c.scheduled_start_time > after)
        query = _run_select().where(cond).order_by(r.c.scheduled_start_time, r.c.id).limit(limit)
        return [self._run_dict(row) for row in conn.execute(query).mappings()]

    def next_start(self, tenant_id: str, labels: list[str], after: pendulum.DateTime) -> pendulum.DateTime | None:
        """The earliest start time after ``after`` of a run ready for ``labels``: when to look again."""
        r = t.flow_runs
        query = sa.select(sa.func.min(r.c.scheduled_start_time)).where(
            self._ready(tenant_id, labels) & (r.c.scheduled_start_time > after)
        )
        with self._read() as conn:
            return conn.execute(query).scalar()

    def claim(
        self,
        tenant_id: str,
        agent_id: str,
        labels: list[str],
        before: pendulum.DateTime,
        limit: int,
    ) -> list[dict[str, Any]]:
        """Claim up to ``limit`` ready runs due now for the agent ``agent_id``, atomically; then the ready runs due
        later (up to ``before``), unclaimed, to fill the limit.

        A claim writes what the version-checked change to Submitted writes (state, message, time,
        version + 1, agent, a history entry). PostgreSQL skips rows another claim holds
        (``FOR UPDATE SKIP LOCKED``), so racing agents never wait for or conflict with each other;
        SQLite's write lock, taken at BEGIN, makes the transaction the only writer.
        """
        stamp = now()
        message = f"Submitted by agent {self._agent_name(tenant_id, agent_id)}"
        if self.is_postgres:
            return self._claim_postgres(tenant_id, agent_id, labels, stamp, before, limit, message)
        r = t.flow_runs
        with self._write() as conn:
            query = (
                _run_select()
                .where(self._ready(tenant_id, labels) & (r.c.scheduled_start_time <= stamp))
                .order_by(r.c.scheduled_start_time, r.c.id)
                .limit(limit)
            )
            rows = [dict(row) for row in conn.execute(query).mappings()]
            claimed = []
            if rows:
                result = conn.execute(
                    r.update()
                    .where(r.c.id.in_([row["id"] for row in rows]) & (r.c.state == State.SCHEDULED.value))
                    .values(
                        state=State.SUBMITTED.value,
                        state_message=message,
                        state_time=stamp,
                        version=r.c.version + 1,
                        agent_id=agent_id,
                    )
                )
                if result.rowcount != len(rows):  # the write lock above makes this impossible
                    raise StateUpdateConflict("State update failed", "a claimed run changed concurrently")
                for row in rows:
                    row.update(self._state_values(row, State.SUBMITTED, message, stamp), agent_id=agent_id)
                conn.execute(
                    t.flow_run_states.insert(),
                    [
                        {
                            "flow_run_id": row["id"],
                            "state": State.SUBMITTED.value,
                            "message": message,
                            "version": row["version"],
                            "attempt": row["attempt"],
                            "agent_id": agent_id,
                            "timestamp": stamp,
                        }
                        for row in rows
                    ],
                )
                claimed = [self._run_dict(row) for row in rows]
            later = []
            if len(claimed) < limit and before > stamp:
                later = self._queued(conn, tenant_id, labels, stamp, before, limit - len(claimed))
        return claimed + later

    def _claim_postgres(
        self,
        tenant_id: str,
        agent_id: str,
        labels: list[str],
        stamp: pendulum.DateTime,
        before: pendulum.DateTime,
        limit: int,
        message: str,
    ) -> list[dict[str, Any]]:
        """The claim as one statement outside a transaction (``claim.py``): one round trip."""
        params = {
            "tenant_id": tenant_id,
            "agent_id": agent_id,
            "message": message,
            "stamp": stamp,
            "before": max(before, stamp),
            "labels": list(labels),
            "limit": limit,
        }
        with self._autocommit() as conn:
            rows = conn.execute(CLAIM, params).mappings().all()
        claimed = [self._run_dict(row) for row in rows if row["part"] == 0]
        later = [self._run_dict(row) for row in rows if row["part"] == 1]
        return claimed + later[: limit - len(claimed)]

    def _agent_name(self, tenant_id: str, agent_id: str) -> str:
        """The registered agent's name, or a 404. Cached: an agent keeps its id and name for good
        (registering a known name answers its id; agents are never deleted), so the hot path
        reads it once per server."""
        key = (tenant_id, agent_id)
        name = self._agent_names.get(key)
        if name is None:
            with self._read() as conn:
                name = conn.execute(
                    sa.select(t.agents.c.name).where((t.agents.c.id == agent_id) & (t.agents.c.tenant_id == tenant_id))
                ).scalar()
            if name is None:
                raise NotFound("Agent not found", {"X-Agent-Id": agent_id})
            self._agent_names[key] = name
        return name

    @staticmethod
    def _run_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "flow_id": row["flow_id"],
            "flow": {
                "id": row["flow_id"],
                "name": row["flow_name"],
                "version": row["flow_version"],
                "command": row["command"],
            },
            "parameters": row["parameters"],
            "labels": list(row["labels"]),
            "run_config": row["run_config"],
            "scheduled_start_time": _iso(row["scheduled_start_time"]),
            "state": {
                "type": row["state"],
                "message": row["state_message"],
                "timestamp": _iso(row["state_time"]),
            },
            "version": row["version"],
            "attempt": row["attempt"],
            "max_retries": row["max_retries"],
            "retry_delay_seconds": row["retry_delay_seconds"],
            "agent_id": row["agent_id"],
            "deployment": row["deployment"],
            "idempotency_key": row["idempotency_key"],
            "created": _iso(row["created"]),
            "start_time": _iso(row["start_time"]),
            "end_time": _iso(row["end_time"]),
        }

    # --- logs -----------------------------------------------------------------------------

    def write_logs(self, tenant_id: str, entries: list[dict[str, Any]]) -> int:
        run_ids = {e["flow_run_id"] for e in entries}
        with self._write() as conn:
            found = set(
                conn.execute(
                    sa.select(t.flow_runs.c.id).where(
                        (t.flow_runs.c.tenant_id == tenant_id) & t.flow_runs.c.id.in_(run_ids)
                    )
                ).scalars()
            )
            missing = run_ids - found
            if missing:
                raise NotFound("Flow run not found", {"flow_run_id": sorted(missing)})
            stamp = now()
            conn.execute(
                t.logs.insert(),
                [
                    {
                        "tenant_id": tenant_id,
                        "flow_run_id": e["flow_run_id"],
                        "timestamp": e.get("timestamp") or stamp,
                        "level": e.get("level", "INFO"),
                        "name": e.get("name", ""),
                        "message": e["message"],
                    }
                    for e in entries
                ],
            )
        return len(entries)

    def read_logs(
        self, tenant_id: str, run_id: str, cursor: str | None, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Logs in the order they were written, after ``cursor``.

        The returned cursor is never None, so a follower can keep asking from where it stopped.
        """
        after = 0
        if cursor:
            (after,) = decode_cursor(cursor, int)
        with self._read() as conn:
            self._run_row(conn, tenant_id, run_id)
            rows = list(
                conn.execute(
                    sa.select(t.logs)
                    .where((t.logs.c.flow_run_id == run_id) & (t.logs.c.id > after))
                    .order_by(t.logs.c.id)
                    .limit(limit)
                ).mappings()
            )
        last = rows[-1]["id"] if rows else after
        items = [
            {
                "timestamp": _iso(r["timestamp"]),
                "level": r["level"],
                "name": r["name"],
                "message": r["message"],
            }
            for r in rows
        ]
        return items, encode_cursor(last)

    # --- agents ---------------------------------------------------------------------------

    @staticmethod
    def lease_seconds(lease_seconds: float, heartbeat_period: float | None) -> float:
        """An agent's lease: the server's, or three of the agent's heartbeat periods if longer."""
        return max(lease_seconds, 3 * (heartbeat_period or 0.0))

    def register_agent(
        self, tenant_id: str, data: dict[str, Any], lease_seconds: float = DEFAULT_LEASE_SECONDS
    ) -> dict[str, Any]:
        """Register an agent; a name already registered in the tenant keeps its id.

        A restarted agent is the same agent, so the runs it claimed before can be found
        (and re-attached) by its id. Registering starts its lease and ends a previous leave.
        """
        config_id = data.get("agent_config_id")
        stamp = now()
        period = data.get("heartbeat_period")
        values = {
            "name": data.get("name") or "agent",
            "backend": data.get("backend") or "",
            "labels": sorted(set(data.get("labels") or [])),
            "agent_config_id": config_id,
            "last_heartbeat": stamp,
            "heartbeat_period": period,
            "lease_until": stamp.add(seconds=self.lease_seconds(lease_seconds, period)),
            "left_at": None,
        }
        with self._write() as conn:
            if config_id:
                self._agent_config_row(conn, tenant_id, config_id)
            cond = (t.agents.c.tenant_id == tenant_id) & (t.agents.c.name == values["name"])
            row = conn.execute(sa.select(t.agents).where(cond)).mappings().first()
            if row is None:
                new = {**values, "id": str(uuid.uuid4()), "tenant_id": tenant_id, "created": stamp}
                try:
                    with conn.begin_nested():
                        conn.execute(t.agents.insert().values(**new))
                    return self._agent_dict(new)
                except sa.exc.IntegrityError:
                    # Another registration of this name won the race: this one is that agent.
                    row = conn.execute(sa.select(t.agents).where(cond)).mappings().one()
            conn.execute(t.agents.update().where(t.agents.c.id == row["id"]).values(**values))
            answer = self._agent_dict({**row, **values})
            # Lets a starting agent notice that another one with its name is still alive; an
            # agent that left cleanly is not alive, so its successor is not warned.
            if row["left_at"] is None:
                answer["previous_heartbeat"] = _iso(row["last_heartbeat"])
            return answer

    def get_agent(self, tenant_id: str, agent_id: str) -> dict[str, Any]:
        with self._read() as conn:
            row = (
                conn.execute(
                    sa.select(t.agents).where((t.agents.c.id == agent_id) & (t.agents.c.tenant_id == tenant_id))
                )
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("Agent not found", {"id": agent_id})
        return self._agent_dict(row)

    def heartbeat(self, tenant_id: str, agent_id: str, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> dict[str, Any]:
        """Record that the agent is alive and renew its lease; answer with its runs that were asked
        to cancel, and whether its lease ran out since its previous heartbeat (its runs recovered)."""
        stamp = now()
        with self._write() as conn:
            cond = (t.agents.c.id == agent_id) & (t.agents.c.tenant_id == tenant_id)
            row = conn.execute(sa.select(t.agents).where(cond)).mappings().first()
            if row is None:
                raise NotFound("Agent not found", {"id": agent_id})
            conn.execute(
                t.agents.update()
                .where(cond)
                .values(
                    last_heartbeat=stamp,
                    lease_until=stamp.add(seconds=self.lease_seconds(lease_seconds, row["heartbeat_period"])),
                    lease_expired_at=None,
                    left_at=None,
                )
            )
        with self._read() as conn:
            rows = conn.execute(
                _run_select().where(
                    (t.flow_runs.c.tenant_id == tenant_id)
                    & (t.flow_runs.c.agent_id == agent_id)
                    & (t.flow_runs.c.state == State.CANCELLING.value)
                )
            ).mappings()
            return {
                "cancelling": [self._run_dict(r) for r in rows],
                "lease_expired": row["lease_expired_at"] is not None,
            }

    def leave_agent(self, tenant_id: str, agent_id: str) -> dict[str, Any]:
        """The agent exited cleanly: hand its claimed-but-undeployed runs back at once, mark it left.

        Its deployed runs keep the lease: a restart within it re-attaches them; otherwise the
        sweep recovers them as for any silent agent.
        """
        agent = self.get_agent(tenant_id, agent_id)
        handed_back = []
        for run in self._runs_of(tenant_id, agent_id, [State.SUBMITTED]):
            if run["deployment"] is not None:
                continue
            message = f"Handed back: agent {agent['name']} left before deploying it"
            if self._recover(run, State.SCHEDULED, message):
                handed_back.append(run["id"])
        stamp = now()
        with self._write() as conn:
            conn.execute(
                t.agents.update()
                .where((t.agents.c.id == agent_id) & (t.agents.c.tenant_id == tenant_id))
                .values(left_at=stamp)
            )
        return {**agent, "left": _iso(stamp), "handed_back": handed_back}

    def _runs_of(self, tenant_id: str, agent_id: str, states: list[State]) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.flow_runs).where(
                    (t.flow_runs.c.tenant_id == tenant_id)
                    & (t.flow_runs.c.agent_id == agent_id)
                    & t.flow_runs.c.state.in_([s.value for s in states])
                )
            ).mappings()
            return [dict(r) for r in rows]

    def _recover(self, run: dict[str, Any], state: State, message: str) -> bool:
        """Move ``run`` (as read) to ``state`` if nobody changed it since; False if someone did.

        The compare-and-set on the version is what makes recovery safe when several servers sweep
        one database: one wins, the others find the version moved and leave the run alone; a
        retry is written in the winner's transaction, so it is never lost nor made twice.
        """
        try:
            with self._write() as conn:
                # Handed back or recovered, the run no longer belongs to the agent.
                self._change_state(conn, dict(run), state, message, None, force_agent=state == State.SCHEDULED)
        except (StateUpdateConflict, IllegalTransition):
            return False
        return True

    # --- the sweep: leases and timeouts (run by every server, see server/leases.py) ------

    def expire_leases(self) -> list[dict[str, Any]]:
        """Recover the runs of every agent whose lease ran out; returns what was done to which run.

        Submitted and never deployed → Scheduled; deployed, Running → Failed (then retried if
        retries remain); Cancelling → Cancelled. Each message names the agent and when it went
        silent. The agents are flagged so that their next heartbeat says ``lease_expired``.
        """
        stamp = now()
        a, r = t.agents, t.flow_runs
        with self._write() as conn:
            conn.execute(
                a.update()
                .where((a.c.lease_until < stamp) & a.c.lease_expired_at.is_(None) & a.c.left_at.is_(None))
                .values(lease_expired_at=stamp)
            )
        active = [State.SUBMITTED.value, State.RUNNING.value, State.CANCELLING.value]
        with self._read() as conn:
            rows = conn.execute(
                sa.select(r, a.c.name.label("agent_name"), a.c.last_heartbeat.label("agent_seen"))
                .join(a, a.c.id == r.c.agent_id)
                .where(r.c.state.in_(active) & (a.c.lease_until < stamp))
                .order_by(r.c.scheduled_start_time)
            ).mappings()
            runs = [dict(row) for row in rows]
        done = []
        for run in runs:
            silent = f"agent {run.pop('agent_name')} has been silent since {_iso(run.pop('agent_seen'))}"
            current = State(run["state"])
            if current == State.SUBMITTED and run["deployment"] is None:
                state, message = State.SCHEDULED, f"Handed back: {silent} (lease expired) before deploying it"
            elif current == State.CANCELLING:
                state, message = State.CANCELLED, f"Cancelled: {silent} (lease expired)"
            else:
                state, message = State.FAILED, f"Lost: {silent} (lease expired); its workload may still run"
            if self._recover(run, state, message):
                done.append({"id": run["id"], "tenant_id": run["tenant_id"], "from": current.value, "to": state.value})
        return done

    def expire_cancelling(self, timeout_seconds: float) -> list[str]:
        """Cancel runs Cancelling for over ``timeout_seconds`` that no live agent holds (no agent,
        an unknown one, or one whose lease ran out); returns their ids."""
        stamp = now()
        a, r = t.agents, t.flow_runs
        with self._read() as conn:
            rows = conn.execute(
                sa.select(r)
                .outerjoin(a, a.c.id == r.c.agent_id)
                .where(
                    (r.c.state == State.CANCELLING.value)
                    & (r.c.state_time < stamp.subtract(seconds=timeout_seconds))
                    & (a.c.id.is_(None) | (a.c.lease_until < stamp))
                )
            ).mappings()
            runs = [dict(row) for row in rows]
        message = f"Cancelled: no live agent acted on the cancellation within {timeout_seconds:g}s"
        return [run["id"] for run in runs if self._recover(run, State.CANCELLED, message)]

    def list_agents(self, tenant_id: str) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.agents).where(t.agents.c.tenant_id == tenant_id).order_by(t.agents.c.last_heartbeat.desc())
            ).mappings()
            return [self._agent_dict(r) for r in rows]

    def count_agents_alive(self) -> int:
        stamp = now()
        a = t.agents
        with self._read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where((a.c.lease_until >= stamp) & a.c.left_at.is_(None))
            ).scalar_one()

    def count_runs_by_state(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.flow_runs.c.state, sa.func.count()).group_by(t.flow_runs.c.state)).all()
        return {state: count for state, count in rows}

    def count_due(self) -> int:
        """Scheduled runs whose start time has come (all tenants, any labels): the queue's depth."""
        r = t.flow_runs
        with self._read() as conn:
            return conn.execute(
                sa.select(sa.func.count()).where(
                    (r.c.state == State.SCHEDULED.value) & (r.c.scheduled_start_time <= now())
                )
            ).scalar_one()

    @staticmethod
    def _agent_dict(row: Any) -> dict[str, Any]:
        lease_until = row.get("lease_until")
        left = row.get("left_at")
        return {
            "id": row["id"],
            "name": row["name"],
            "backend": row["backend"],
            "labels": list(row["labels"]),
            "agent_config_id": row["agent_config_id"],
            "created": _iso(row["created"]),
            "last_heartbeat": _iso(row["last_heartbeat"]),
            "heartbeat_period": row.get("heartbeat_period"),
            "lease_until": _iso(lease_until),
            "left": _iso(left),
            "alive": left is None and lease_until is not None and lease_until >= now(),
        }

    def create_agent_config(self, tenant_id: str, name: str, settings: dict[str, Any]) -> dict[str, Any]:
        values = {
            "id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "name": name,
            "settings": settings,
            "created": now(),
        }
        with self._write() as conn:
            conn.execute(t.agent_configs.insert().values(**values))
        return self._agent_config_dict(values)

    def get_agent_config(self, tenant_id: str, config_id: str) -> dict[str, Any]:
        with self._read() as conn:
            return self._agent_config_dict(self._agent_config_row(conn, tenant_id, config_id))

    def _agent_config_row(self, conn: Connection, tenant_id: str, config_id: str) -> RowMapping:
        row = (
            conn.execute(
                sa.select(t.agent_configs).where(
                    (t.agent_configs.c.id == config_id) & (t.agent_configs.c.tenant_id == tenant_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise NotFound("Agent config not found", {"agent_config_id": config_id})
        return row

    @staticmethod
    def _agent_config_dict(row: Any) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "settings": row["settings"],
            "created": _iso(row["created"]),
        }


class _ConcurrentUpdate(Exception):
    """A compare-and-set found the row moved on: the caller's transaction is retried."""
