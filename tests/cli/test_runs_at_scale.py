"""Runs at scale: output printed as written, ids by prefix and short in tables, following a run that waits."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.cli.conftest import run_cli

MARKUP_LIKE = ["copying [/mnt/data]", "[bold]not bold[/bold]", "[/]", "closing [/] early", "a [red]b", ":thumbs_up:"]


@pytest.fixture
def run(server):
    api = server.client()
    return api.create_flow_run(flow_id=api.register_flow("etl", "echo etl")["id"])


def test_runs_logs_prints_workload_output_exactly_as_written(server, capsys, run):
    server.client().write_logs([{"flow_run_id": run["id"], "message": m} for m in MARKUP_LIKE])

    code, out, err = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"])

    assert (code, err) == (0, "")
    for message in MARKUP_LIKE:
        assert message in out


def test_following_logs_prints_workload_output_exactly_as_written(server, capsys, run):
    api = server.client()
    api.write_logs([{"flow_run_id": run["id"], "message": m} for m in MARKUP_LIKE])
    api.set_flow_run_state(run["id"], version=1, state="Failed", message="[red]x[/red]")

    code, out, _ = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"], "--follow")

    assert code == 0
    for message in MARKUP_LIKE:
        assert message in out


def test_names_commands_and_messages_print_as_written(server, capsys):
    api = server.client()
    flow = api.register_flow("[bold]etl[/bold]", "cp -r [/mnt/data] /tmp", labels=["[x]"])
    run = api.create_flow_run(flow_id=flow["id"])
    api.set_flow_run_state(run["id"], version=1, state="Failed", message="copying [/mnt/data] failed")

    outputs = [
        run_cli(capsys, "--api", server.url, "flows", "list")[1],
        run_cli(capsys, "--api", server.url, "runs", "list")[1],
        run_cli(capsys, "--api", server.url, "runs", "show", run["id"])[1],
    ]

    assert "[bold]etl[/bold]" in outputs[0]
    assert "cp -r [/mnt/data] /tmp" in outputs[0]
    assert "copying [/mnt/data] failed" in outputs[1]
    assert "copying [/mnt/data] failed" in outputs[2]
    assert "cp -r [/mnt/data] /tmp" in outputs[2]


def test_runs_list_shows_ids_short(server, capsys, run):
    _, out, _ = run_cli(capsys, "--api", server.url, "runs", "list")

    assert run["id"][:8] in out
    assert run["id"] not in out


def test_runs_list_json_keeps_full_ids(server, capsys, run):
    _, out, _ = run_cli(capsys, "--api", server.url, "runs", "list", "-o", "json")

    assert [r["id"] for r in json.loads(out)] == [run["id"]]


@pytest.mark.parametrize("command", [["runs", "show"], ["runs", "logs"], ["runs", "cancel"]])
def test_a_unique_prefix_names_a_run(server, capsys, run, command):
    code, out, err = run_cli(capsys, "--api", server.url, *command, run["id"][:6], "-o", "json")

    assert (code, err) == (0, "")
    if command[1] != "logs":
        assert json.loads(out)["id"] == run["id"]


def give_id(server, old, new):
    """Rename a run in the server's database, so that two runs share a known prefix."""
    from agent_core.server.storage import schema as t

    runs = t.flow_runs
    with server.store.engine.begin() as conn:
        row = dict(conn.execute(runs.select().where(runs.c.id == old)).mappings().one())
        # The run's unique idempotency key moves with it.
        conn.execute(runs.update().where(runs.c.id == old).values(idempotency_key=None))
        conn.execute(runs.insert().values({**row, "id": new}))
        for table in (t.flow_run_states, t.flow_run_labels, t.logs):
            conn.execute(table.update().where(table.c.flow_run_id == old).values(flow_run_id=new))
        conn.execute(runs.delete().where(runs.c.id == old))


def test_an_ambiguous_prefix_is_refused_naming_the_candidates(server, capsys):
    api = server.client()
    flow = api.register_flow("etl", "echo")
    twins = ["abcd0000-0000-4000-8000-000000000001", "abcd1111-0000-4000-8000-000000000002"]
    for new in twins:
        give_id(server, api.create_flow_run(flow_id=flow["id"])["id"], new)

    code, out, err = run_cli(capsys, "--api", server.url, "runs", "show", "abcd")
    unique = run_cli(capsys, "--api", server.url, "runs", "show", "abcd1", "-o", "json")

    assert code == 2
    assert "Traceback" not in out + err
    (line,) = [line for line in err.splitlines() if line.startswith("Error")]
    assert "matches several runs" in line
    assert twins[0][:12] in line
    assert twins[1][:12] in line
    assert json.loads(unique[1])["id"] == twins[1]


@pytest.mark.parametrize(("given", "says"), [("abc", "at least 4"), ("zzzz", "at least 4"), ("0000", "no run")])
def test_a_prefix_that_names_no_run_is_one_clear_error(server, capsys, run, given, says):
    if run["id"].startswith(given):
        pytest.skip("the random id happens to start with it")

    code, out, err = run_cli(capsys, "--api", server.url, "runs", "show", given)

    assert code == 2
    assert "Traceback" not in out + err
    (line,) = [line for line in err.splitlines() if line.startswith("Error")]
    assert says in line


def test_following_a_run_that_has_not_started_says_it_is_waiting(server, capsys, run):
    api = server.client()

    def finish():
        time.sleep(1.5)
        api.set_flow_run_state(run["id"], version=1, state="Cancelled")

    finisher = threading.Thread(target=finish)
    finisher.start()
    try:
        code, out, err = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"][:8], "-f")
    finally:
        finisher.join(30)

    assert code == 0
    assert f"Waiting for run {run['id'][:8]} to start (Scheduled" in err
    assert err.count("Waiting for run") == 1
    assert "run ended Cancelled" in out


def test_following_a_running_run_does_not_say_it_is_waiting(server, capsys, run):
    api = server.client()
    running = api.set_flow_run_state(run["id"], version=1, state="Running")
    api.set_flow_run_state(run["id"], version=running["version"], state="Success")

    _, _, err = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"], "-f")

    assert "Waiting" not in err
