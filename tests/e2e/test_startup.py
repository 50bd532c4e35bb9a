"""``agent start`` refusing to start: clear one-line errors and a non-zero exit, never a traceback."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from agent_core.testing.servers import APIServer
from tests.e2e.conftest import free_port, make_run_factory, python_command, wait_for_state


@pytest.fixture
def auth_server(sqlite_url: str) -> Iterator[APIServer]:
    with APIServer(sqlite_url, auth=True) as running:
        yield running


def _assert_clear_error(errors: str) -> None:
    assert "Traceback" not in errors, errors
    assert errors.strip(), "the error should be on stderr"


def test_a_key_the_api_refuses_stops_the_agent_with_a_message_asking_for_a_runner_key(auth_server, start_agent):
    agent = start_agent(auth_server, "--key", "not-a-real-key", ready=False)

    assert agent.wait(30) != 0
    _assert_clear_error(agent.errors())
    assert "runner key" in agent.errors()


def test_a_user_role_key_stops_the_agent_with_a_message_asking_for_a_runner_key(auth_server, start_agent):
    _, user_key = auth_server.store.create_key(auth_server.store.ensure_tenant("default"), "user")
    agent = start_agent(auth_server, "--key", user_key, ready=False)

    assert agent.wait(30) != 0
    _assert_clear_error(agent.errors())
    assert "'user'" in agent.errors()
    assert "'runner' key" in agent.errors()


def test_a_runner_key_is_accepted_and_handed_to_the_workloads_when_the_operator_opts_in(
    auth_server, start_agent, tmp_path
):
    tenant = auth_server.store.ensure_tenant("default")
    _, runner_key = auth_server.store.create_key(tenant, "runner")
    _, admin_key = auth_server.store.create_key(tenant, "admin")
    client = auth_server.client(admin_key)
    seen = tmp_path / "key"
    run = make_run_factory(client)(
        python_command("import os, sys; open(sys.argv[1], 'w').write(os.environ['AGENT_API_KEY'])", seen)
    )
    # The agent's own key reaches workloads only with [agent] pass_api_key (docs/workload.md).
    agent = start_agent(auth_server, "--key", runner_key, env={"AGENT__AGENT__PASS_API_KEY": "true"})

    assert wait_for_state(client, run["id"], agent=agent)["state"]["type"] == "Success"
    assert seen.read_text() == runner_key


def test_an_unknown_backend_lists_the_installed_ones_and_names_the_package_to_install(run_cli):
    done = run_cli("start", "--backend", "nope", "--api", "http://127.0.0.1:9")

    assert done.returncode != 0
    _assert_clear_error(done.stderr)
    assert "'nope'" in done.stderr
    assert "local" in done.stderr
    assert "pip install agent-plugin-nope" in done.stderr


def test_an_invalid_backend_setting_is_a_start_up_error_naming_it(run_cli):
    done = run_cli("start", "--backend", "local", "--api", "http://127.0.0.1:9", "--set", "no_such_setting=1")

    assert done.returncode != 0
    _assert_clear_error(done.stderr)
    assert "no_such_setting" in done.stderr


def test_sigterm_while_waiting_for_an_unreachable_api_at_start_up_exits_0(start_agent):
    agent = start_agent(f"http://127.0.0.1:{free_port()}", ready=False)
    # Its signal handlers are in place once it retries (a loaded machine takes seconds to get there).
    agent.wait_for_output("unreachable", timeout=30)
    assert agent.alive()

    agent.send(signal.SIGTERM)

    assert agent.wait(10) == 0
    _assert_clear_error(agent.errors() or "(empty)")


def test_an_agent_address_without_a_port_is_reported_even_when_the_api_is_unreachable(start_agent):
    agent = start_agent(f"http://127.0.0.1:{free_port()}", "--agent-address", "http://127.0.0.1", ready=False)
    # Refused before connecting: otherwise it would wait for the absent API for ever. The bound
    # only allows for a loaded machine's slow interpreter start.
    deadline = time.monotonic() + 20
    while agent.alive() and time.monotonic() < deadline:
        time.sleep(0.1)

    assert not agent.alive(), "the agent should refuse a malformed --agent-address at once"
    assert agent.proc.returncode != 0
    assert "--agent-address" in agent.errors()
