"""Schema migrations: a database made by the first version upgrades in place with its data.

The v1 data is written the way v1 code wrote it (naive UTC times, one row per run label)
through the tables as they exist in a database stopped at version 1.
"""

import hashlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime, timedelta

import pendulum
import pytest
import sqlalchemy as sa

from agent_core.errors import ConfigError
from agent_core.server.storage import Store, make_engine, upgrade
from agent_core.server.storage import schema as current
from agent_core.server.storage.migrations import LATEST_VERSION
from agent_core.states import State

T0 = datetime(2025, 3, 1, 12, 0, 0)  # naive UTC, as v1 stored times
SECRET = "agk_v1-secret-key-for-the-migration-test"


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def versions(engine):
    with engine.connect() as conn:
        return [row.version for row in conn.execute(sa.text("SELECT version FROM schema_version ORDER BY version"))]


def v1_tables(engine):
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return metadata.tables


@pytest.fixture
def v1_db(engine):
    """A database at schema version 1 holding two tenants' worth of v1 data."""
    assert upgrade(engine, target=1) == 1
    t = v1_tables(engine)
    assert "attempt" not in t["flow_runs"].c
    assert "flow_run_states" not in t
    runs = [
        ("run-scheduled", "Scheduled", "Created", 1, ["gpu"], None),
        ("run-running", "Running", "Started", 3, [], "agent-1"),
        ("run-success", "Success", "Done", 4, ["eu", "gpu"], "agent-1"),
    ]
    with engine.begin() as conn:
        conn.execute(t["tenants"].insert(), [{"id": "default", "name": "default", "created": T0}])
        conn.execute(
            t["api_keys"].insert(),
            [
                {
                    "id": "key-1",
                    "tenant_id": "default",
                    "name": "old admin",
                    "role": "admin",
                    "prefix": SECRET[:10],
                    "key_hash": hashlib.sha256(SECRET.encode()).hexdigest(),
                    "created": T0,
                    "revoked": None,
                }
            ],
        )
        conn.execute(
            t["flows"].insert(),
            [
                {
                    "id": "flow-1",
                    "tenant_id": "default",
                    "name": "etl",
                    "version": 2,
                    "command": "python etl.py",
                    "description": "old flow",
                    "labels": ["gpu"],
                    "run_config": {"type": "docker", "image": "python:3.11"},
                    "created": T0,
                    "updated": T0,
                }
            ],
        )
        for i, (run_id, state, message, version, labels, agent) in enumerate(runs):
            conn.execute(
                t["flow_runs"].insert(),
                {
                    "id": run_id,
                    "tenant_id": "default",
                    "flow_id": "flow-1",
                    "flow_version": 2,
                    "command": "python etl.py",
                    "name": f"etl-{i}",
                    "parameters": {"day": i},
                    "labels": labels,
                    "run_config": {"type": "docker", "image": "python:3.11"},
                    "scheduled_start_time": T0 + timedelta(minutes=i),
                    "state": state,
                    "state_message": message,
                    "state_time": T0 + timedelta(minutes=10 + i),
                    "version": version,
                    "agent_id": agent,
                    "deployment": None,
                    "idempotency_key": f"key-{i}",
                    "created": T0,
                    "start_time": None,
                    "end_time": None,
                },
            )
            for label in labels:
                conn.execute(t["flow_run_labels"].insert(), {"flow_run_id": run_id, "label": label})
        conn.execute(
            t["logs"].insert(),
            [
                {
                    "tenant_id": "default",
                    "flow_run_id": "run-running",
                    "timestamp": T0 + timedelta(seconds=s),
                    "level": "INFO",
                    "name": "flow",
                    "message": f"line {s}",
                }
                for s in range(3)
            ],
        )
        conn.execute(
            t["agents"].insert(),
            {
                "id": "agent-1",
                "tenant_id": "default",
                "name": "old-agent",
                "backend": "local",
                "labels": ["gpu"],
                "agent_config_id": "config-1",
                "created": T0,
                "last_heartbeat": T0,
            },
        )
        conn.execute(
            t["agent_configs"].insert(),
            {"id": "config-1", "tenant_id": "default", "name": "old", "settings": {"x": "1"}, "created": T0},
        )
    return engine


@pytest.fixture
def upgraded(v1_db):
    assert upgrade(v1_db) == LATEST_VERSION
    return Store(v1_db)


def test_a_new_database_is_migrated_to_the_latest_version(engine):
    assert upgrade(engine) == LATEST_VERSION
    assert versions(engine) == list(range(1, LATEST_VERSION + 1))


def test_upgrading_stops_at_the_target_version(engine):
    upgrade(engine, target=1)

    assert versions(engine) == [1]


def test_a_v1_database_upgrades_to_the_latest_version(v1_db):
    assert upgrade(v1_db) == LATEST_VERSION
    assert versions(v1_db) == list(range(1, LATEST_VERSION + 1))


def test_v1_runs_keep_their_data(upgraded):
    run = upgraded.get_run("default", "run-running")

    assert run["state"]["type"] == "Running"
    assert run["state"]["message"] == "Started"
    assert run["version"] == 3
    assert run["parameters"] == {"day": 1}
    assert run["agent_id"] == "agent-1"
    assert run["idempotency_key"] == "key-1"
    assert run["flow"] == {"id": "flow-1", "name": "etl", "version": 2, "command": "python etl.py"}
    assert pendulum.parse(run["scheduled_start_time"]) == pendulum.instance(T0 + timedelta(minutes=1), tz="UTC")


def test_v1_runs_get_the_default_retry_columns(upgraded):
    runs = [upgraded.get_run("default", r) for r in ("run-scheduled", "run-running", "run-success")]

    assert {(r["attempt"], r["max_retries"], r["retry_delay_seconds"]) for r in runs} == {(1, 0, 0.0)}


def test_each_v1_run_gets_its_current_state_as_first_history_entry(upgraded):
    history = upgraded.state_history("default", "run-success")

    assert len(history) == 1
    entry = history[0]
    assert (entry["type"], entry["message"], entry["version"], entry["attempt"]) == ("Success", "Done", 4, 1)
    assert entry["agent_id"] == "agent-1"
    assert pendulum.parse(entry["timestamp"]) == pendulum.instance(T0 + timedelta(minutes=12), tz="UTC")


def test_v1_flows_logs_agents_and_configs_are_intact(upgraded):
    assert upgraded.get_flow("default", "etl")["run_config"] == {"type": "docker", "image": "python:3.11"}
    logs, _ = upgraded.read_logs("default", "run-running", None, 10)
    assert [e["message"] for e in logs] == ["line 0", "line 1", "line 2"]
    assert [a["name"] for a in upgraded.list_agents("default")] == ["old-agent"]
    assert upgraded.get_agent_config("default", "config-1")["settings"] == {"x": "1"}


def test_a_v1_key_still_authenticates(upgraded):
    principal = upgraded.authenticate(SECRET)

    assert (principal.tenant_id, principal.role) == ("default", "admin")


def test_a_v1_scheduled_run_is_in_the_queue_with_its_labels(upgraded):
    queued = upgraded.queue("default", ["gpu"], pendulum.now("UTC"), 10)

    assert [(r["id"], r["labels"], r["version"]) for r in queued] == [("run-scheduled", ["gpu"], 1)]


def test_a_v1_run_continues_through_the_state_machine(upgraded):
    done = upgraded.set_state("default", "run-running", version=3, state=State.SUCCESS)

    assert (done["state"]["type"], done["version"]) == ("Success", 4)
    assert [h["type"] for h in upgraded.state_history("default", "run-running")] == ["Running", "Success"]


def test_a_v1_idempotency_key_still_returns_its_run(upgraded):
    run, created = upgraded.create_run("default", {"flow_name": "etl", "idempotency_key": "key-0"})

    assert (run["id"], created) == ("run-scheduled", False)


def test_upgrading_twice_changes_nothing(v1_db):
    upgrade(v1_db)
    with v1_db.connect() as conn:
        before = conn.execute(sa.text("SELECT version, applied FROM schema_version ORDER BY version")).all()
        states = conn.execute(sa.text("SELECT count(*) FROM flow_run_states")).scalar()

    assert upgrade(v1_db) == LATEST_VERSION

    with v1_db.connect() as conn:
        assert conn.execute(sa.text("SELECT version, applied FROM schema_version ORDER BY version")).all() == before
        assert conn.execute(sa.text("SELECT count(*) FROM flow_run_states")).scalar() == states


def test_a_database_newer_than_this_code_is_refused(engine):
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO schema_version (version, description, applied) VALUES (:v, 'future', :t)"),
            {"v": LATEST_VERSION + 1, "t": T0},
        )

    with pytest.raises(ConfigError, match="newer"):
        upgrade(engine)


def reflected_columns(engine):
    """{table: {column: (generic type, length, nullable, primary key)}} as the database has them."""
    metadata = sa.MetaData()
    metadata.reflect(engine)
    return {name: _columns(table) for name, table in metadata.tables.items()}


def _columns(table):
    out = {}
    for column in table.columns:
        kind = column.type
        if isinstance(kind, sa.types.TypeDecorator):
            kind = kind.impl_instance
        out[column.name] = (kind.python_type, getattr(kind, "length", None), column.nullable, column.primary_key)
    return out


def test_a_migrated_database_has_exactly_the_current_schema(engine):
    upgrade(engine)

    assert reflected_columns(engine) == {name: _columns(table) for name, table in current.metadata.tables.items()}


def test_a_database_upgraded_from_v1_has_the_same_schema_as_a_new_one(v1_db, tmp_path):
    upgrade(v1_db)
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    upgrade(fresh)

    assert reflected_columns(v1_db) == {name: _columns(t) for name, t in current.metadata.tables.items()}
    fresh.dispose()


def test_a_migrated_database_has_the_current_indexes(engine):
    upgrade(engine)
    inspector = sa.inspect(engine)

    for table in current.metadata.tables.values():
        declared = {index.name for index in table.indexes}
        assert declared <= {i["name"] for i in inspector.get_indexes(table.name)}, table.name


UPGRADE_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from agent_core.server.storage import make_engine, upgrade
    url, start_at = sys.argv[1], float(sys.argv[2])
    engine = make_engine(url)
    while time.time() < start_at:
        time.sleep(0.001)
    print(upgrade(engine))
    """
)


@pytest.mark.slow
def test_concurrent_upgrades_from_several_processes_are_safe(engine, db_url):
    with engine.connect():
        pass  # the file exists, in WAL mode: racing first connections have their own test below
    start_at = time.time() + 2.0  # every process is imported and waiting by then
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", UPGRADE_SCRIPT, db_url, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [proc.communicate(timeout=60) for proc in procs]

    assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == [str(LATEST_VERSION)] * 3
    assert versions(engine) == list(range(1, LATEST_VERSION + 1))


def test_concurrent_upgrades_from_several_threads_are_safe(engine, db_url):
    with engine.connect():
        pass  # the file exists, in WAL mode: racing first connections have their own test below
    barrier = threading.Barrier(4)
    results, errors = [], []

    def migrate():
        own = make_engine(db_url)
        try:
            barrier.wait(timeout=30)
            results.append(upgrade(own))
        except Exception as exc:  # reported below with the others
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert results == [LATEST_VERSION] * 4
    assert versions(engine) == list(range(1, LATEST_VERSION + 1))


def test_a_run_created_after_the_upgrade_uses_the_new_columns(upgraded):
    run, created = upgraded.create_run(
        "default",
        {"flow_name": "etl", "max_retries": 2, "retry_delay_seconds": 5.0, "idempotency_key": str(uuid.uuid4())},
    )

    assert created
    assert (run["attempt"], run["max_retries"], run["retry_delay_seconds"]) == (1, 2, 5.0)


def test_a_first_connection_waits_for_another_writer_instead_of_failing(tmp_path):
    path = tmp_path / "agent.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE t (x INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.5, other.execute, ["COMMIT"]).start()
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 1
    finally:
        engine.dispose()
        time.sleep(0.6)
        other.close()


def test_upgrading_to_v3_keeps_one_agent_per_name_and_renames_the_older_twins(engine):
    upgrade(engine, target=2)
    agents = sa.Table("agents", sa.MetaData(), autoload_with=engine)
    tenants = sa.Table("tenants", sa.MetaData(), autoload_with=engine)
    now = datetime(2026, 1, 1, 12, 0, 0)
    with engine.begin() as conn:
        conn.execute(tenants.insert().values(id="default", name="default", created=now))
        for agent_id, seen in (("a" * 36, now - timedelta(hours=1)), ("b" * 36, now)):
            conn.execute(
                agents.insert().values(
                    id=agent_id,
                    tenant_id="default",
                    name="twin",
                    backend="local",
                    labels=[],
                    created=now,
                    last_heartbeat=seen,
                )
            )

    upgrade(engine)

    with engine.connect() as conn:
        names = dict(conn.execute(sa.select(agents.c.id, agents.c.name)).all())
    assert names == {"b" * 36: "twin", "a" * 36: "twin-aaaaaaaa"}
    assert Store(engine).register_agent("default", {"name": "twin"})["id"] == "b" * 36


def test_upgrading_to_v4_gives_each_agent_a_lease_of_90_s_from_its_last_heartbeat(engine):
    upgrade(engine, target=3)
    agents = sa.Table("agents", sa.MetaData(), autoload_with=engine)
    tenants = sa.Table("tenants", sa.MetaData(), autoload_with=engine)
    seen = datetime(2026, 1, 1, 12, 0, 0)
    with engine.begin() as conn:
        conn.execute(tenants.insert().values(id="default", name="default", created=seen))
        conn.execute(
            agents.insert().values(
                id="a" * 36,
                tenant_id="default",
                name="old",
                backend="local",
                labels=[],
                created=seen,
                last_heartbeat=seen,
            )
        )

    upgrade(engine)

    (agent,) = Store(engine).list_agents("default")
    assert pendulum.parse(agent["lease_until"]) == pendulum.instance(seen, tz="UTC").add(seconds=90)
    assert (agent["left"], agent["heartbeat_period"], agent["alive"]) == (None, None, False)


def test_a_v1_agent_is_recovered_like_any_other_after_the_upgrade(upgraded):
    # agent-1 was last seen in 2025 and holds run-running: the first sweep recovers it.
    done = upgraded.expire_leases()

    assert [(d["id"], d["to"]) for d in done] == [("run-running", "Failed")]
    assert upgraded.get_run("default", "run-running")["state"]["message"].startswith("Lost: agent old-agent")
