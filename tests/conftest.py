"""Fixtures shared by the whole suite: databases, API servers and clients on loopback.

Services (PostgreSQL, Docker, moto) come from ``tests/fixtures/services.py``; a test asks for
what it needs by fixture name and gets the real thing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_core.client import APIClient
from agent_core.testing.servers import APIServer

pytest_plugins = ["tests.fixtures.services"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty database: a SQLite file, then a PostgreSQL database (the suite runs on both)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'agent.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Like ``db_url``, but one database per module: for long tables of cases on one server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'agent.db'}"
    return request.getfixturevalue("module_postgres_url")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agent.db'}"


@pytest.fixture
def sqlite_server(sqlite_url: str) -> Iterator[APIServer]:
    """A real API server over a fresh SQLite file, for tests that need one database only."""
    with APIServer(sqlite_url) as server:
        yield server


@pytest.fixture
def sqlite_api(sqlite_server: APIServer) -> APIClient:
    return sqlite_server.client()


@pytest.fixture
def api_server(db_url: str) -> Iterator[APIServer]:
    """A real API server (waitress, loopback, ephemeral port) without auth, on each database."""
    with APIServer(db_url) as server:
        yield server


@pytest.fixture
def api(api_server: APIServer) -> APIClient:
    """A client of ``api_server``; without auth it acts as admin of the default tenant."""
    return api_server.client()


@pytest.fixture
def auth_api_server(db_url: str) -> Iterator[APIServer]:
    """A real API server that requires keys (create them with ``server.store.create_key``)."""
    with APIServer(db_url, auth=True) as server:
        yield server


@pytest.fixture
def make_flow(api: APIClient) -> Callable[..., dict]:
    """Register a flow on ``api``: ``make_flow(command="echo hi", name=..., labels=...)``."""
    counter = iter(range(1_000_000))

    def make(command: str = "echo hello", name: str | None = None, **kwargs: object) -> dict:
        return api.register_flow(name or f"flow-{next(counter)}", command, **kwargs)  # type: ignore[arg-type]

    return make
