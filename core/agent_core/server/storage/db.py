"""Engine creation: the one place that knows how SQLite and PostgreSQL differ."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from agent_core.errors import ConfigError
from agent_core.masking import mask_passwords

SQLITE_BUSY_TIMEOUT_MS = 5000
# A pooled PostgreSQL connection idle longer than this is pinged before it is used again (the
# database may have restarted or closed it meanwhile); one in steady use is not.
PING_IDLE_SECONDS = 2.0


def normalize_url(url: str) -> str:
    """Accept the URLs people type (``postgresql://``, a bare path) as SQLAlchemy URLs."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser()}"
    return url


def describe_url(url: sa.engine.URL | str) -> str:
    """A database URL fit for logs and errors: its password masked."""
    if isinstance(url, sa.engine.URL):
        return url.render_as_string(hide_password=True)
    return mask_passwords(url)


def make_engine(url: str, *, ping_idle_seconds: float = PING_IDLE_SECONDS) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and immediate write locks;
    PostgreSQL pings a pooled connection idle for over ``ping_idle_seconds`` before using it."""
    url = normalize_url(url)
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        reason = "its port is not a number" if "int()" in str(exc) else mask_passwords(str(exc))
        raise ConfigError(
            f"invalid database URL {describe_url(url)}: {reason}; "
            "expected sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB"
        ) from None
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"invalid database URL {describe_url(parsed)}: port {parsed.port} is not between 1 and 65535")
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.get_backend_name() == "postgresql":
        try:
            engine = sa.create_engine(parsed, pool_size=10, max_overflow=20)
        except ModuleNotFoundError:
            raise ConfigError("PostgreSQL support needs psycopg: pip install 'agent-core[postgres]'") from None
        _ping_when_idle(engine, ping_idle_seconds)
        return engine
    raise ConfigError(
        f"unsupported database {parsed.get_backend_name()!r} in {describe_url(parsed)}: "
        "use sqlite:///PATH or postgresql://..."
    )


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for connections idle over ``idle_seconds``.

    The pre-ping costs a round trip per checkout, as many as the hot path's whole claim; a
    connection checked in moments ago was alive then. A connection the database dropped
    within that moment fails its request once (a 503 the client backs off on), and SQLAlchemy
    then replaces every pooled connection.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["agent_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("agent_idle_since")
        if since is None or time.monotonic() - since < idle_seconds:
            return  # just connected, or in steady use
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool drops this connection and checks out another (a new one if need be).
            raise sa.exc.DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _sqlite_engine(url: sa.engine.URL) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN would be DEFERRED; we issue ours in `_on_begin`.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction that starts DEFERRED and later upgrades its lock fails at once
        # with SQLITE_BUSY when another process wrote meanwhile (the busy timeout does not
        # apply to upgrades); taking the write lock up front makes writers queue instead.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _enable_wal(cursor: Any) -> None:
    # WAL is a property of the file: once set it stays, so only a new file needs the switch.
    # The switch needs an exclusive lock and fails at once ("database is locked") instead of
    # waiting when another process writes, so it is retried within the busy timeout.
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")  # an in-memory database stays "memory"
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
