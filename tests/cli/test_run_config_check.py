"""A run config is refused when it is given (flows register, runs create), not when a run fails."""

from __future__ import annotations

import json

import pytest

from agent_core.plugins import BACKENDS_GROUP, entry_points
from tests.cli.conftest import run_cli

REFUSED = [
    ('{"type": "local", "comand": "x"}', "comand"),
    ('{"type": "local", "env": {"A": 1}}', "env"),
    ('{"type": "docker", "imagee": "busybox"}', "imagee"),
    ('{"type": "universal", "image": "busybox"}', "image"),
    ('{"type": "dokcer"}', "dokcer"),
    ('{"env": {}}', '"type"'),
    ('{"type": "local", "timeout_seconds": -5}', "timeout_seconds"),
    ('{"type": "local", "ship_output": "no"}', "ship_output"),
]
ACCEPTED = [
    '{"type": "local", "env": {"A": "1"}, "working_dir": "/tmp"}',
    '{"type": "docker", "image": "busybox:1.36"}',
    '{"type": "universal", "env": {"A": "1"}, "labels": ["x"]}',
    # The core keys of every type (CONTRACTS.md 6).
    '{"type": "local", "timeout_seconds": 30, "ship_output": false}',
]


@pytest.mark.parametrize(("config", "named"), REFUSED, ids=[c for c, _ in REFUSED])
def test_flows_register_refuses_a_run_config_no_backend_could_accept(home, capsys, config, named):
    code, out, err = run_cli(capsys, "flows", "register", "etl", "--command", "echo", "--run-config", config)

    assert code == 2
    assert "Traceback" not in out + err
    (line,) = [line for line in err.splitlines() if line.startswith("Error")]
    assert "--run-config" in line
    assert named in line
    assert run_cli(capsys, "flows", "list", "-o", "json")[1].strip() == "[]"  # nothing registered


@pytest.mark.parametrize(("config", "named"), REFUSED, ids=[c for c, _ in REFUSED])
def test_runs_create_refuses_a_run_config_no_backend_could_accept(home, capsys, config, named):
    run_cli(capsys, "flows", "register", "etl", "--command", "echo")

    code, _, err = run_cli(capsys, "runs", "create", "etl", "--run-config", config)

    assert code == 2
    assert named in err
    assert run_cli(capsys, "runs", "list", "-o", "json")[1].strip() == "[]"


@pytest.mark.parametrize("config", ACCEPTED)
def test_a_run_config_a_backend_accepts_is_registered_as_given(home, capsys, config):
    code, out, err = run_cli(
        capsys, "flows", "register", "etl", "--command", "echo", "--run-config", config, "-o", "json"
    )

    assert (code, err) == (0, "")
    assert json.loads(out)["run_config"] == json.loads(config)


def test_a_type_whose_backend_is_not_installed_here_passes_when_an_agent_of_it_is_registered(server, capsys):
    server.client().register_agent(name="nomad-1", backend="nomad", labels=[])

    code, _, err = run_cli(
        capsys, "--api", server.url, "flows", "register", "etl", "--command", "x", "--run-config", '{"type": "nomad"}'
    )

    assert code == 0
    assert "not checked" in err


def test_a_type_no_backend_here_or_registered_accepts_names_what_would_do(server, capsys):
    server.client().register_agent(name="l", backend="local", labels=[])

    _, _, err = run_cli(capsys, "--api", server.url, "runs", "create", "etl", "--run-config", '{"type": "kubernetes"}')

    (line,) = [line for line in err.splitlines() if line.startswith("Error")]
    installed = ", ".join(sorted(ep.name for ep in entry_points(BACKENDS_GROUP)))
    assert f"installed here: {installed}" in line
    assert "registered with the API: local" in line
    assert "universal" in line
