"""The cheap paths: ``agent --help``, ``agent --version`` and every command given ``--api URL``
import neither the API server nor SQLAlchemy (issue 9). Their speed is measured in
``bench/cli_bench.py``; here only what they import, in a fresh interpreter each.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from agent_core.testing.servers import APIServer

PROBE = """
import json, sys
from agent_core.cli.main import main
code = main(sys.argv[1:])
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "sqlalchemy"
                or name == "agent_core.server" or name.startswith("agent_core.server."))
print("\\nLOADED " + json.dumps({"code": code, "loaded": loaded}))
"""


def imported_by(*args: str, env_home: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"AGENT_HOME": env_home, "PATH": "/usr/bin:/bin", "COLUMNS": "120"},
        check=False,
    )
    line = [line for line in result.stdout.splitlines() if line.startswith("LOADED ")]
    assert line, result.stdout + result.stderr
    return json.loads(line[-1][len("LOADED ") :])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with APIServer(f"sqlite:///{tmp_path_factory.mktemp('cheap') / 'server.db'}") as srv:
        api = srv.client()
        flow = api.register_flow("etl", "echo etl")
        run = api.create_flow_run(flow_id=flow["id"])
        api.write_logs([{"flow_run_id": run["id"], "message": "hello"}])
        srv.run_id = run["id"]
        yield srv


@pytest.mark.parametrize(
    "args", [["--help"], ["--version"], ["runs", "--help"], ["start", "--help"], ["server", "start", "--help"]]
)
def test_help_and_version_import_neither_the_server_nor_sqlalchemy(args, tmp_path):
    result = imported_by(*args, env_home=str(tmp_path))

    assert result == {"code": 0, "loaded": []}


REMOTE = [
    ["runs", "list"],
    ["runs", "show", "{prefix}"],
    ["runs", "logs", "{prefix}"],
    ["flows", "list"],
    ["flows", "register", "etl2", "--command", "echo", "--run-config", '{"type": "local", "env": {"A": "1"}}'],
    ["runs", "create", "etl"],
    ["agents", "list"],
    ["version"],
    ["doctor", "--backend", "local"],
]


@pytest.mark.parametrize("args", REMOTE, ids=[" ".join(a) for a in REMOTE])
def test_a_command_given_an_api_url_imports_neither_the_server_nor_sqlalchemy(server, args, tmp_path):
    args = [a.replace("{prefix}", server.run_id[:8]) for a in args]

    result = imported_by("--api", server.url, *args, env_home=str(tmp_path))

    assert result == {"code": 0, "loaded": []}


def test_the_api_url_after_the_command_is_as_cheap(server, tmp_path):
    result = imported_by("runs", "list", "--api", server.url, env_home=str(tmp_path))

    assert result == {"code": 0, "loaded": []}


def test_the_embedded_default_does_load_the_server(tmp_path):
    # The probe is not blind: without --api the same command runs the API in-process.
    result = imported_by("runs", "list", env_home=str(tmp_path))

    assert result["code"] == 0
    assert "sqlalchemy" in result["loaded"]
    assert "agent_core.server" in result["loaded"]
