"""Connecting: the key's role, an API that is not up yet, and server-side agent configs."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_core.client import APIClient
from agent_core.errors import StartupError
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, create_run, wait_until


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[APIServer]:
    server = APIServer(f"sqlite:///{tmp_path / 'auth.db'}", auth=True).start()
    yield server
    server.close()


def key_for(server: APIServer, role: str) -> str:
    _, secret = server.store.create_key(server.store.ensure_tenant(), role)
    return secret


@pytest.mark.parametrize("role", ["runner", "admin"])
def test_a_runner_or_admin_key_connects_and_registers(auth_server: APIServer, make_agent, role: str) -> None:
    agent = make_agent(client=auth_server.client(key_for(auth_server, role)))

    agent.connect()

    assert agent.id
    admin = auth_server.client(key_for(auth_server, "admin"))
    assert [a["id"] for a in admin.list_agents()] == [agent.id]


def test_a_user_key_is_refused_saying_a_runner_key_is_needed(auth_server: APIServer, make_agent) -> None:
    agent = make_agent(client=auth_server.client(key_for(auth_server, "user")))

    with pytest.raises(StartupError, match="runner") as info:
        agent.connect()

    assert "'user'" in str(info.value)
    assert "agent keys create --role runner" in str(info.value)


def test_start_with_a_user_key_fails_with_the_startup_error(auth_server: APIServer, make_agent) -> None:
    agent = make_agent(client=auth_server.client(key_for(auth_server, "user")))

    make_agent.start(agent).join(10)

    assert isinstance(make_agent.errors.get(agent.name), StartupError)


def test_an_unknown_key_is_refused_with_the_fix(auth_server: APIServer, make_agent) -> None:
    agent = make_agent(client=auth_server.client("not-a-real-key"))

    with pytest.raises(StartupError, match="--key"):
        agent.connect()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_agent_started_before_its_api_waits_and_connects_once_it_is_up(
    tmp_path: Path, make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    server = APIServer(f"sqlite:///{tmp_path / 'late.db'}", port=free_port())
    backend = Backend()
    agent = make_agent([backend], client=APIClient(server.url, retries=0))
    thread = make_agent.start(agent)
    try:
        wait_until(lambda: any("unreachable" in r.getMessage() for r in caplog.records))
        assert not agent.id
        time.sleep(0.3)

        server.start()
        wait_until(lambda: agent.id, timeout=10)

        run = create_run(server.client())
        wait_until(lambda: run["id"] in backend.deployed_ids(), timeout=10)
    finally:
        agent.stop()
        thread.join(15)  # before the server goes: the agent flushes its run logs on the way out
        if hasattr(server, "store"):
            server.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unreachable" in r.getMessage()]
    assert server.url in warnings[0].getMessage()


def test_an_agent_config_id_pulls_labels_and_env_from_the_server(make_agent, sqlite_api: APIClient) -> None:
    config = sqlite_api.create_agent_config("gpu-pool", {"labels": ["gpu"], "env": {"CUDA": "12"}})
    envs: dict[str, dict[str, str]] = {}

    def capture(flow_run: Any, run_config: Any, agent: Any) -> str:
        envs[flow_run.id] = agent.flow_run_env(flow_run)
        return "ok"

    run = create_run(sqlite_api, labels=["gpu"])
    agent = make_agent([Backend(behaviour=capture)], agent_config_id=config["id"], labels=["cpu"], env={"A": "1"})
    make_agent.start(agent)

    env = wait_until(lambda: envs.get(run["id"]))

    assert agent.labels == ["gpu"]
    assert env["CUDA"] == "12" and env["A"] == "1"
    (registered,) = sqlite_api.list_agents()
    assert registered["labels"] == ["gpu"]


def test_an_unknown_agent_config_id_is_a_startup_error(make_agent) -> None:
    agent = make_agent(agent_config_id="00000000-0000-0000-0000-000000000000")

    with pytest.raises(StartupError, match="agent config"):
        agent.connect()


def test_an_agent_without_labels_takes_only_unlabelled_runs(make_agent, sqlite_api: APIClient) -> None:
    backend = Backend()
    labelled = create_run(sqlite_api, labels=["gpu"])
    plain = create_run(sqlite_api)
    make_agent([backend], start=True)

    wait_until(lambda: plain["id"] in backend.deployed_ids())

    assert labelled["id"] not in backend.deployed_ids()
