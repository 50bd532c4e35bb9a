"""The embedded default: with no API URL, every command works on SQLite under $AGENT_HOME.

Nothing is started by hand: the CLI opens (and creates) the database itself, and two processes
can use it at once.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from agent_core.cli.main import main


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty $AGENT_HOME, no config file and no API URL anywhere."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for name in ("AGENT_CONFIG", "AGENT__API__URL", "AGENT__API__KEY", "AGENT__SERVER__DB"):
        monkeypatch.delenv(name, raising=False)
    return home


def agent(capsys, *args):
    """Run ``agent ARGS`` in-process; returns (exit code, stdout)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out


def test_registering_a_flow_creates_the_database_under_agent_home(home, capsys):
    code, out = agent(capsys, "flows", "register", "etl", "--command", "echo etl")

    assert code == 0
    assert "etl" in out
    assert (home / "agent.db").is_file()


def test_a_registered_flow_is_listed(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl", "--label", "gpu")

    code, out = agent(capsys, "flows", "list", "--output", "json")

    assert code == 0
    assert [(f["name"], f["labels"]) for f in json.loads(out)] == [("etl", ["gpu"])]


def test_a_run_is_created_and_listed(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl")

    code, created = agent(capsys, "runs", "create", "etl", "--param", "day=3", "--output", "json")
    _, listed = agent(capsys, "runs", "list", "--output", "json")

    assert code == 0
    run = json.loads(created)
    assert run["parameters"] == {"day": 3}
    assert [(r["id"], r["state"]["type"]) for r in json.loads(listed)] == [(run["id"], "Scheduled")]


def test_a_run_is_shown_with_its_history(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl")
    run = json.loads(agent(capsys, "runs", "create", "etl", "--output", "json")[1])

    code, out = agent(capsys, "runs", "show", run["id"], "--output", "json")

    shown = json.loads(out)
    assert code == 0
    assert shown["id"] == run["id"]
    assert [s["type"] for s in shown["states"]] == ["Scheduled"]


def test_a_run_is_cancelled(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl")
    run = json.loads(agent(capsys, "runs", "create", "etl", "--output", "json")[1])

    code, out = agent(capsys, "runs", "cancel", run["id"], "--output", "json")

    assert code == 0
    assert json.loads(out)["state"]["type"] == "Cancelled"


def test_the_embedded_database_keeps_data_between_commands(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl")
    for _ in range(3):
        agent(capsys, "runs", "create", "etl")

    _, out = agent(capsys, "runs", "list", "--output", "json")

    assert len(json.loads(out)) == 3


def test_keys_are_created_on_the_embedded_database(home, capsys):
    code, out = agent(capsys, "keys", "create", "--role", "runner", "--name", "ci", "--output", "json")

    created = json.loads(out)
    assert code == 0
    assert created["key"].startswith("agk_")
    _, listed = agent(capsys, "keys", "list", "--output", "json")
    assert [(k["name"], k["role"]) for k in json.loads(listed)] == [("ci", "runner")]


WRITER = textwrap.dedent(
    """
    import sys
    from agent_core.client import APIClient
    client = APIClient.embedded_api(sys.argv[1])
    for i in range(200):
        client.create_flow_run(flow_name="etl", parameters={"i": i})
    print("created", 200)
    """
)

READER = textwrap.dedent(
    """
    import sys, time
    from agent_core.client import APIClient
    client = APIClient.embedded_api(sys.argv[1])
    counts = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        counts.append(len(client.list_flow_runs(limit=500)))
        if counts[-1] >= 200:
            break
        time.sleep(0.01)
    print(" ".join(map(str, counts)))
    """
)


@pytest.mark.slow
def test_two_processes_create_and_read_runs_at_once(home, capsys):
    agent(capsys, "flows", "register", "etl", "--command", "echo etl")
    url = f"sqlite:///{home / 'agent.db'}"

    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reader = subprocess.Popen([sys.executable, "-c", READER, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer_out, writer_err = writer.communicate(timeout=90)
    assert writer_out.split() == [b"created", b"200"]
    reader_out, reader_err = reader.communicate(timeout=90)

    assert (writer.returncode, writer_err.decode()) == (0, "")
    assert (reader.returncode, reader_err.decode()) == (0, "")
    counts = [int(c) for c in reader_out.split()]
    assert counts == sorted(counts)
    assert counts[-1] == 200
    _, out = agent(capsys, "runs", "list", "--output", "json", "--limit", "500")
    assert sorted(r["parameters"]["i"] for r in json.loads(out)) == list(range(200))
