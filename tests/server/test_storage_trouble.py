"""Storage trouble is a 503 naming the storage, never a 500: a full database, a read-only one,
one that went away. The answer is JSON ``{"error": "Storage unavailable", "detail": ...}`` and
the client raises ``StorageUnavailable``, an ``APIUnavailable`` it backs off on.

The database is made full or read-only under a running server through SQLAlchemy's own
connection events on the server's engine (a page limit, ``query_only``), or, on PostgreSQL,
by the database's own settings.
"""

import time

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy import event

from agent_core.errors import APIUnavailable, StorageUnavailable
from agent_core.server.storage import Store, make_engine, upgrade
from agent_core.server.storage.db import PING_IDLE_SECONDS
from agent_core.testing.servers import APIServer


def assert_storage_unavailable(response, where):
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "Storage unavailable"
    assert where in body["detail"]
    assert response.headers["Retry-After"]


def on_every_new_connection(engine, *statements):
    """Run ``statements`` on each connection the engine opens from now on (and drop the open ones)."""

    @event.listens_for(engine, "connect")
    def _limit(dbapi_conn, _record):
        cursor = dbapi_conn.cursor()
        for statement in statements:
            cursor.execute(statement)
        cursor.close()

    engine.dispose()


@pytest.fixture
def sqlite_api_server(sqlite_url):
    with APIServer(sqlite_url) as server:
        server.client().register_flow("f", "echo f")
        yield server


def test_a_full_sqlite_database_is_a_503_naming_it(sqlite_api_server):
    server = sqlite_api_server
    with server.store.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()
    on_every_new_connection(server.store.engine, f"PRAGMA max_page_count = {pages}")
    big = {"flow_name": "f", "parameters": {"blob": "x" * 200_000}}

    response = requests.post(f"{server.url}/api/flow-runs", json=big, timeout=30)

    assert_storage_unavailable(response, "agent.db")
    assert "full" in response.json()["detail"]


def test_a_read_only_sqlite_database_is_a_503_and_reads_still_work(sqlite_api_server):
    server = sqlite_api_server
    on_every_new_connection(server.store.engine, "PRAGMA query_only = ON")

    response = requests.post(f"{server.url}/api/flows", json={"name": "g", "command": "x"}, timeout=30)

    assert_storage_unavailable(response, "agent.db")
    assert "readonly" in response.json()["detail"]
    assert requests.get(f"{server.url}/api/flows/f", timeout=30).status_code == 200


def test_the_client_raises_storage_unavailable_an_outage_it_backs_off_on(sqlite_api_server):
    on_every_new_connection(sqlite_api_server.store.engine, "PRAGMA query_only = ON")
    client = sqlite_api_server.client()

    with pytest.raises(StorageUnavailable) as caught:
        client.register_flow("g", "x")

    assert isinstance(caught.value, APIUnavailable)
    assert caught.value.status == 503


@pytest.mark.postgres
def test_a_read_only_postgres_database_is_a_503_naming_it(postgres_url):
    with APIServer(postgres_url) as server:
        server.client().register_flow("f", "echo f")
        name = sa.engine.make_url(postgres_url).database
        with server.store.engine.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
            conn.commit()
        server.store.engine.dispose()

        response = requests.post(f"{server.url}/api/flow-runs", json={"flow_name": "f"}, timeout=30)

        assert_storage_unavailable(response, name)
        assert "read-only" in response.json()["detail"]


@pytest.mark.postgres
def test_a_postgres_server_that_went_away_is_a_503_and_the_password_stays_hidden(postgres_url):
    # A database URL with a password, on a port where nothing listens any more.
    with APIServer(postgres_url) as server:
        engine = server.store.engine
        gone = engine.url.set(password="hunter2-secret", port=1)
        server.store.engine = sa.create_engine(gone, pool_pre_ping=True)
        try:
            response = requests.get(f"{server.url}/api/flows", timeout=60)
        finally:
            server.store.engine.dispose()
            server.store.engine = engine

        assert_storage_unavailable(response, "127.0.0.1:1")
        assert "hunter2-secret" not in response.text
        assert "***" in response.json()["detail"]


def terminate_other_backends(engine):
    """Close every other connection to the engine's database, as a database restart would."""
    with engine.connect() as conn:
        conn.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        conn.commit()


@pytest.mark.postgres
def test_a_pooled_connection_the_database_closed_while_idle_is_replaced_before_use(postgres_url):
    upgrade(make_engine(postgres_url))
    store = Store(make_engine(postgres_url, ping_idle_seconds=0.2))
    store.ensure_tenant()
    store.register_flow("default", {"name": "f", "command": "echo f"})
    killer = make_engine(postgres_url)
    try:
        terminate_other_backends(killer)
        time.sleep(0.5)  # idle past the ping threshold

        assert store.get_flow("default", "f")["name"] == "f"
    finally:
        killer.dispose()
        store.engine.dispose()


@pytest.mark.postgres
def test_a_server_whose_database_connections_were_closed_answers_after_they_idled(postgres_url):
    with APIServer(postgres_url) as server:
        client = server.client()
        client.register_flow("f", "echo f")
        terminate_other_backends(make_engine(postgres_url))
        time.sleep(PING_IDLE_SECONDS + 0.5)

        response = requests.get(f"{server.url}/api/flows/f", timeout=30)

        assert response.status_code == 200, response.text
