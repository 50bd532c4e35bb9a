"""``agent runs prune``: finished runs older than a bound go, with their logs and history; nothing else does."""

from __future__ import annotations

import json

import pendulum
import pytest

from agent_core.errors import AuthError, BadRequest
from agent_core.server.storage import schema as t
from agent_core.testing.servers import APIServer
from tests.cli.conftest import run_cli


def age(server, run_id, days):
    """Make a run look as if it ended ``days`` ago."""
    then = pendulum.now("UTC").subtract(days=days)
    with server.store.engine.begin() as conn:
        conn.execute(t.flow_runs.update().where(t.flow_runs.c.id == run_id).values(end_time=then, state_time=then))


@pytest.fixture
def runs(server):
    """An old Success with logs, an old Failed, an old Cancelled, a recent Success and an old Running run."""
    api = server.client()
    flow = api.register_flow("etl", "echo")

    def finished(state, days, logs=0):
        run = api.create_flow_run(flow_id=flow["id"])
        version = run["version"]
        if state != "Cancelled":
            version = api.set_flow_run_state(run["id"], version=version, state="Running")["version"]
        if logs:
            api.write_logs([{"flow_run_id": run["id"], "message": f"line {i}"} for i in range(logs)])
        if state == "Cancelled":
            api.cancel_flow_run(run["id"])
        elif state != "Running":
            api.set_flow_run_state(run["id"], version=version, state=state)
        age(server, run["id"], days)
        return run["id"]

    return {
        "old_success": finished("Success", 40, logs=3),
        "old_failed": finished("Failed", 40),
        "old_cancelled": finished("Cancelled", 40),
        "recent_success": finished("Success", 1),
        "old_running": finished("Running", 40),
    }


def remaining(server):
    return {r["id"] for r in server.client().list_flow_runs()}


def test_prune_deletes_finished_runs_older_than_the_bound(server, capsys, runs):
    code, out, _ = run_cli(capsys, "--api", server.url, "runs", "prune", "--older-than", "30d", "-o", "json")

    result = json.loads(out)
    assert code == 0
    assert (result["runs"], result["logs"]) == (3, 3)
    assert remaining(server) == {runs["recent_success"], runs["old_running"]}


def test_prune_takes_away_the_logs_and_history_of_what_it_deletes(server, capsys, runs):
    run_cli(capsys, "--api", server.url, "runs", "prune", "--older-than", "30d")

    with server.store.engine.connect() as conn:
        for table in (t.logs, t.flow_run_states, t.flow_run_labels):
            left = conn.execute(table.select().where(table.c.flow_run_id == runs["old_success"])).all()
            assert left == []


def test_prune_by_state_keeps_the_other_final_states(server, capsys, runs):
    run_cli(capsys, "--api", server.url, "runs", "prune", "--older-than", "30d", "--state", "failed")

    assert runs["old_failed"] not in remaining(server)
    assert {runs["old_success"], runs["old_cancelled"]} <= remaining(server)


def test_a_dry_run_counts_and_deletes_nothing(server, capsys, runs):
    code, out, _ = run_cli(capsys, "--api", server.url, "runs", "prune", "--older-than", "30d", "--dry-run")

    assert code == 0
    assert out.startswith("Would delete 3 run(s) and 3 log line(s)")
    assert remaining(server) == set(runs.values())


def test_pruning_an_unfinished_state_is_refused(server, capsys, runs):
    code, out, err = run_cli(capsys, "--api", server.url, "runs", "prune", "--older-than", "1d", "--state", "running")

    assert code == 2
    assert "Traceback" not in out + err
    assert "Running is not a final state" in err
    assert remaining(server) == set(runs.values())


def test_the_api_refuses_an_unfinished_state_too(server, runs):
    with pytest.raises(BadRequest, match="states"):
        server.client().prune_flow_runs(older_than_seconds=0, states=["Running"])

    assert remaining(server) == set(runs.values())


def test_prune_needs_an_admin_key(tmp_path):
    with APIServer(f"sqlite:///{tmp_path / 'auth.db'}", auth=True) as server:
        key = server.store.create_key(server.store.ensure_tenant(), "user", "people")[1]
        with pytest.raises(AuthError, match="admin"):
            server.client(key).prune_flow_runs(older_than_seconds=0)
