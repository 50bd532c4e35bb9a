"""The ``agent`` command line: clear errors, JSON output, following logs, server and config.

Commands run in-process through ``agent_core.cli.main.main`` (the console script's entry
point), against the embedded API under a temporary $AGENT_HOME or a real server over HTTP.
"""

import json
import socket
import threading
import time

import pytest

from agent_core.testing.servers import APIServer
from tests.cli.conftest import run_cli


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BAD_ARGUMENTS = [
    (["runs", "list", "--state", "bogus"], "bogus"),
    (["runs", "list", "--limit", "0"], "--limit"),
    (["runs", "create", "etl", "--in", "5parsecs"], "5parsecs"),
    (["runs", "create", "etl", "--at", "not-a-date"], "not-a-date"),
    (["runs", "create", "etl", "--at", "2030-01-01T00:00", "--in", "5m"], "--at"),
    (["runs", "create", "etl", "--param", "novalue"], "novalue"),
    (["runs", "create", "etl", "--run-config", "{bad json"], "--run-config"),
    (["runs", "create", "no-such-flow"], "no-such-flow"),
    (["runs", "show", "no-such-run"], "no-such-run"),
    (["flows", "register", "etl"], "--command"),
    (["keys", "create", "--role", "god"], "god"),
    (["runs", "explode"], "explode"),
]


@pytest.mark.parametrize(("args", "named"), BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_a_bad_argument_is_one_clear_error_line_and_a_non_zero_exit(home, capsys, args, named):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo etl")

    code, out, err = run_cli(capsys, *args)

    assert code != 0
    assert "Traceback" not in out + err
    error_lines = [line for line in err.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1, err
    assert named in error_lines[0]


def test_an_unreachable_api_is_one_clear_error_line(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__RETRIES", "0")

    code, out, err = run_cli(capsys, "--api", f"http://127.0.0.1:{closed_port()}", "runs", "list")

    assert code == 1
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1
    assert "cannot reach the API" in err


def test_a_bad_key_is_one_clear_error_line(capsys, tmp_path, home):
    with APIServer(f"sqlite:///{tmp_path / 'auth.db'}", auth=True) as server:
        code, out, err = run_cli(capsys, "--api", server.url, "--key", "agk_wrong", "flows", "list")

    assert code == 1
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1
    assert "Invalid API key" in err


JSON_COMMANDS = [
    ["flows", "list"],
    ["flows", "register", "other", "--command", "echo other"],
    ["runs", "list"],
    ["runs", "create", "etl"],
    ["runs", "show", "{run}"],
    ["runs", "cancel", "{run}"],
    ["agents", "list"],
    ["keys", "list"],
    ["keys", "create", "--role", "runner"],
    ["config", "show"],
]


@pytest.mark.parametrize("args", JSON_COMMANDS, ids=[" ".join(a) for a in JSON_COMMANDS])
def test_output_json_prints_parseable_json(home, capsys, args):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo etl")
    run = json.loads(run_cli(capsys, "runs", "create", "etl", "--output", "json")[1])

    code, out, _ = run_cli(capsys, *[a.replace("{run}", run["id"]) for a in args], "--output", "json")

    assert code == 0
    json.loads(out)


def test_runs_list_json_holds_the_runs(home, capsys):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo etl")
    created = [json.loads(run_cli(capsys, "runs", "create", "etl", "-o", "json")[1])["id"] for _ in range(2)]

    _, out, _ = run_cli(capsys, "runs", "list", "--state", "scheduled", "--output", "json")

    assert [r["id"] for r in json.loads(out)] == created[::-1]


def test_following_logs_prints_them_until_the_run_ends(server, capsys):
    api = server.client()
    run = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])

    def drive():
        time.sleep(0.5)
        api.write_logs([{"flow_run_id": run["id"], "message": m} for m in ("one", "two")])
        running = api.set_flow_run_state(run["id"], version=1, state="Running")
        time.sleep(0.7)
        api.write_logs([{"flow_run_id": run["id"], "message": "three"}])
        api.set_flow_run_state(run["id"], version=running["version"], state="Success")

    driver = threading.Thread(target=drive)
    driver.start()
    try:
        code, out, err = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"], "--follow")
    finally:
        driver.join(30)

    assert code == 0
    assert "Traceback" not in err
    assert out.index("one") < out.index("two") < out.index("three") < out.index("run ended Success")


def test_following_a_finished_run_prints_its_logs_and_ends(server, capsys):
    api = server.client()
    run = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])
    api.write_logs([{"flow_run_id": run["id"], "message": "all done"}])
    api.set_flow_run_state(run["id"], version=1, state="Failed")

    code, out, _ = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"], "--follow")

    assert code == 0
    assert "all done" in out
    assert "run ended Failed" in out


def test_logs_without_follow_print_what_there_is(server, capsys):
    api = server.client()
    run = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])
    api.write_logs([{"flow_run_id": run["id"], "message": f"line {i}"} for i in range(3)])

    code, out, _ = run_cli(capsys, "--api", server.url, "runs", "logs", run["id"])

    assert code == 0
    assert out.index("line 0") < out.index("line 1") < out.index("line 2")


def test_server_start_on_a_public_address_without_auth_refuses(home, capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "server", "start", "--host", "0.0.0.0", "--port", "0", "--db", f"sqlite:///{tmp_path / 's.db'}"
    )

    assert code == 1
    assert "Traceback" not in out + err
    assert "refusing to serve on 0.0.0.0 without auth" in err
    assert "--auth" in err


def test_server_start_with_auth_and_no_keys_refuses(home, capsys, tmp_path):
    code, out, err = run_cli(
        capsys, "server", "start", "--auth", "--port", "0", "--db", f"sqlite:///{tmp_path / 's.db'}"
    )

    assert code == 1
    assert "Traceback" not in out + err
    assert "no API key" in err
    assert "keys create --role admin" in err


def test_config_show_masks_the_key(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__KEY", "agk_supersecretvalue123")

    code, out, _ = run_cli(capsys, "config", "show")

    assert code == 0
    assert "agk_" not in out  # nothing of the secret, not even its prefix
    assert "key = '***'" in out


def test_config_show_json_masks_the_key(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__KEY", "agk_supersecretvalue123")

    _, out, _ = run_cli(capsys, "config", "show", "--output", "json")

    assert json.loads(out)["api"]["key"] == "***"


def test_config_show_names_the_environment_variable_a_value_came_from(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__TIMEOUT", "7")

    _, out, _ = run_cli(capsys, "config", "show")

    (line,) = [line for line in out.splitlines() if line.startswith("timeout")]
    assert "7.0" in line
    assert "env AGENT__API__TIMEOUT" in line


def test_config_show_names_the_environment_as_the_source_of_the_key(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__KEY", "agk_supersecretvalue123")

    _, out, _ = run_cli(capsys, "config", "show")

    (line,) = [line for line in out.splitlines() if line.startswith("key")]
    assert "env AGENT__API__KEY" in line


def test_config_show_names_the_config_file_a_value_came_from(home, capsys, tmp_path):
    (tmp_path / "agent.toml").write_text("[api]\nretries = 5\n")

    _, out, _ = run_cli(capsys, "config", "show")

    (line,) = [line for line in out.splitlines() if line.startswith("retries")]
    assert "5" in line
    assert "agent.toml" in line


def test_a_flag_wins_over_the_environment(home, capsys, monkeypatch):
    monkeypatch.setenv("AGENT__API__URL", "http://from-env:4200")

    _, out, _ = run_cli(capsys, "--api", "http://from-flag:4200", "config", "show", "--output", "json")

    assert json.loads(out)["api"]["url"] == "http://from-flag:4200"


def test_config_show_masks_secrets_inside_tables_and_urls(home, capsys, monkeypatch, tmp_path):
    (tmp_path / "agent.toml").write_text(
        '[agent]\nenv = { DB_PASSWORD = "hunter2hunter2", TZ = "UTC" }\n'
        '[server]\ndb = "postgresql://agent:s3cr3tpw@dbhost/agent"\n'
        '[backends.ecs]\naws_secret_access_key = "AKIAXXXXXXXXXXXXXXXX"\n'
    )

    _, table_out, _ = run_cli(capsys, "config", "show")
    _, json_out, _ = run_cli(capsys, "config", "show", "-o", "json")

    for out in (table_out, json_out):
        assert "hunter2" not in out
        assert "s3cr3tpw" not in out
        assert "XXXXXXXXXXXX" not in out
        assert "UTC" in out
    values = json.loads(json_out)
    assert values["agent"]["env"] == {"DB_PASSWORD": "***", "TZ": "UTC"}
    assert values["server"]["db"] == "postgresql://agent:***@dbhost/agent"
    assert "database: postgresql://agent:***@dbhost/agent" in table_out
