"""Run logs: queued without waiting for the API, sent in batches, kept through an outage
(bounded), acknowledged to the writer, and masked on the way out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agent_core import Deployment, FlowRun
from agent_core.client import APIClient
from agent_core.engine.runlogs import RunLogs
from agent_core.errors import DeploymentError
from agent_core.testing.harness import run_log_messages
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, create_run, wait_for_state, wait_until

# Generous: these hold on a loaded two-core machine; the real figures are milliseconds.
FLUSH_WAIT = 20.0


def messages(client: APIClient, run_id: str) -> list[str]:
    return run_log_messages(client, run_id)  # every page


@pytest.fixture
def run_logs_of(sqlite_server: APIServer) -> Iterator[Any]:
    """``run_logs_of(**options)``: a started :class:`RunLogs` on the test's server; stopped at teardown."""
    made: list[RunLogs] = []

    def make(**options: Any) -> RunLogs:
        logs = RunLogs(sqlite_server.client(), "test-agent", **options)
        logs.start()
        made.append(logs)
        return logs

    yield make
    for logs in made:
        logs.stop(time.monotonic() + 5)


# --- the part -------------------------------------------------------------------------------


def test_writing_a_line_never_waits_for_an_absent_api(sqlite_server: APIServer, sqlite_api: APIClient, run_logs_of):
    run = create_run(sqlite_api)
    logs = run_logs_of()
    sqlite_server.stop()
    try:
        began = time.monotonic()
        for i in range(1000):
            logs.write(run["id"], f"line {i}")
        # A request per line against a closed port would take far longer than this.
        assert time.monotonic() - began < 5.0
        assert logs.flush(time.monotonic() + 1.0) is False
    finally:
        sqlite_server.start()
    assert logs.flush(time.monotonic() + FLUSH_WAIT) is True
    assert messages(sqlite_api, run["id"]) == [f"line {i}" for i in range(1000)]


def test_flush_gives_up_at_its_deadline_while_the_api_is_away(
    sqlite_server: APIServer, sqlite_api: APIClient, run_logs_of
):
    run = create_run(sqlite_api)
    logs = run_logs_of()
    sqlite_server.stop()
    try:
        logs.write(run["id"], "waits for the API")
        began = time.monotonic()
        assert logs.flush(began + 1.0) is False
        assert time.monotonic() - began < 5.0
        assert logs.pending == 1
    finally:
        sqlite_server.start()


def test_a_writer_is_told_a_line_is_shipped_only_once_the_api_has_it(
    sqlite_server: APIServer, sqlite_api: APIClient, run_logs_of
):
    run = create_run(sqlite_api)
    logs = run_logs_of()
    shipped = threading.Event()
    sqlite_server.stop()
    try:
        logs.write(run["id"], "acknowledged later", on_shipped=shipped.set)
        assert not logs.flush(time.monotonic() + 1.0)
        assert not shipped.is_set()
    finally:
        sqlite_server.start()
    assert shipped.wait(FLUSH_WAIT)
    assert messages(sqlite_api, run["id"]) == ["acknowledged later"]


def test_beyond_the_cap_the_oldest_lines_are_dropped_and_counted_in_the_runs_logs(
    sqlite_server: APIServer, sqlite_api: APIClient, run_logs_of
):
    run = create_run(sqlite_api)
    logs = run_logs_of(max_lines=50, interval=60)  # sends only when flushed: no batch in flight
    sqlite_server.stop()
    try:
        for i in range(80):
            logs.write(run["id"], f"line {i}")
        assert logs.pending == 50
    finally:
        sqlite_server.start()
    assert logs.flush(time.monotonic() + FLUSH_WAIT)
    got = messages(sqlite_api, run["id"])
    assert got[0].startswith("30 log line(s) of this run were dropped")
    assert got[1:] == [f"line {i}" for i in range(30, 80)]


# --- in the agent ---------------------------------------------------------------------------


def test_lines_written_on_a_deploy_thread_reach_the_api_in_order_in_few_requests(
    make_agent, sqlite_server: APIServer, sqlite_api: APIClient
):
    count = 2000

    def chatty(flow_run: FlowRun, agent: Any, **_: Any) -> Deployment:
        for i in range(count):
            agent.write_run_log(flow_run, f"deploy line {i}")
        return Deployment("x", "wl", info="wl")

    run = create_run(sqlite_api)
    before = sqlite_server.requests_answered("POST", "/api/logs")
    make_agent([Backend(behaviour=chatty)], start=True)

    wanted = [f"deploy line {i}" for i in range(count)]
    wait_until(lambda: messages(sqlite_api, run["id"])[:count] == wanted, FLUSH_WAIT)
    # A request per line would be 2,000; batches of up to 1,000 lines every 0.2 s make a few.
    assert sqlite_server.requests_answered("POST", "/api/logs") - before <= count // 20


def test_a_run_log_line_reaches_the_api_with_its_secrets_masked(make_agent, sqlite_api: APIClient):
    def talkative(flow_run: FlowRun, agent: Any, **_: Any) -> Deployment:
        agent.write_run_log(flow_run, "connecting to postgresql://app:pg-pass-1234@db.internal/app")
        agent.write_run_log(flow_run, "using token tok-9f8e7d6c5b for the registry")
        return Deployment("x", "wl", info="wl")

    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=talkative)], start=True, env={"REGISTRY_TOKEN": "tok-9f8e7d6c5b"})

    got = wait_until(lambda: (lambda m: m if len(m) >= 3 else None)(messages(sqlite_api, run["id"])), FLUSH_WAIT)
    assert got[:2] == ["connecting to postgresql://app:***@db.internal/app", "using token *** for the registry"]
    assert not any("pg-pass-1234" in m or "tok-9f8e7d6c5b" in m for m in got)


def test_a_failed_state_message_reaches_the_api_with_its_secrets_masked(make_agent, sqlite_api: APIClient):
    def broken(**_: Any) -> None:
        raise DeploymentError("cannot reach postgresql://app:pg-pass-1234@db.internal/app: refused")

    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=broken)], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed", timeout=FLUSH_WAIT)
    assert failed["state"]["message"] == "cannot reach postgresql://app:***@db.internal/app: refused"
    history = sqlite_api.flow_run_states(run["id"])
    assert not any("pg-pass-1234" in (entry.get("message") or "") for entry in history)
