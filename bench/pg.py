"""A throw-away PostgreSQL cluster for the benchmarks, started the way the test fixtures do.

``AGENT_BENCH_POSTGRES_URL`` names an existing server instead. Standalone on purpose: the
benchmarks must not depend on pytest or on the test suite's private helpers.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from agent_core.testing.harness import free_loopback_port


class PostgresUnavailable(RuntimeError):
    pass


def _bin_dir() -> Path | None:
    candidates: list[Path] = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory
    return None


def _free_port() -> int:
    try:
        return free_loopback_port()
    except RuntimeError as exc:
        raise PostgresUnavailable(str(exc)) from None


@contextlib.contextmanager
def _cluster() -> Iterator[str]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        raise PostgresUnavailable("initdb/pg_ctl not found on PATH or under /usr/lib/postgresql")
    root = Path(tempfile.mkdtemp(prefix="agent-bench-pg-"))
    data = root / "data"
    log = root / "server.log"
    as_user: list[str] = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable("running as root and there is no `postgres` user") from None
        os.chown(root, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    root.chmod(0o700)

    def run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, str(bin_dir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    try:
        done = run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode:
            raise PostgresUnavailable(f"initdb failed: {done.stderr.strip()}")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n")
            # Like a throw-away CI server; the figures say so in their header.
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        port = _free_port()
        done = run("pg_ctl", "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", f"-p {port}", "start")
        if done.returncode:
            raise PostgresUnavailable(f"pg_ctl start failed: {done.stderr.strip()}")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """Base URL of a PostgreSQL server: ``AGENT_BENCH_POSTGRES_URL`` or a private cluster."""
    if external := os.environ.get("AGENT_BENCH_POSTGRES_URL"):
        yield external.rstrip("/")
        return
    with _cluster() as url:
        yield url


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new database on the server (SQLAlchemy URL), dropped afterwards."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(server_url)

    def with_db(db: str, scheme: str) -> str:
        return urlunsplit((scheme, parts.netloc, f"/{db}", parts.query, ""))

    admin_url = with_db(parts.path.lstrip("/") or "postgres", "postgresql")
    name = f"agent_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_db(name, "postgresql+psycopg")
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
