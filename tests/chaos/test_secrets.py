"""Secrets stay secret: no password of a URL, no key, no secret setting appears in a log line,
an error, ``agent config show`` or a workload's environment, whichever way it was given
(config file, environment, flag, URL). Real ``agent`` processes, real databases, real workloads."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import uuid
from collections.abc import Callable
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from agent_core.cli.logging_setup import configure_logging
from agent_core.client import APIClient
from agent_core.errors import NotFound
from agent_core.masking import SecretMasker
from agent_core.testing.servers import APIServer
from tests.chaos.conftest import AGENT_CLI, FAST_AGENT, python_env_dump, wait_until
from tests.e2e.conftest import log_messages, make_run_factory, wait_for_state

PASSWORD = "Pw9x-d0nt-sh0w-9f3a"
OTHER_PASSWORD = "Ap7x-n0t-here-77c1"
BACKEND_PASSWORD = "Rg3x-hidden-31ee"
ENV_SECRET = "Ev5x-quiet-5d20"
TOKEN = "Mt8x-t0ken-8b4c"


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def leaks(text: str, *secrets: str) -> list[str]:
    """The secrets (or the first four characters of one: a mask shows nothing) found in ``text``."""
    return [s for s in secrets if s in text or s[:4] in text]


def env_names(dump: str) -> list[str]:
    return [line.split("=", 1)[0] for line in dump.splitlines() if "=" in line]


# --- a database URL with a password ----------------------------------------------------------


def test_an_agent_on_a_database_url_that_cannot_be_opened_prints_neither_its_password_nor_a_traceback(run_cli):
    # `server start` and the short commands: tests/server/test_db_url_errors.py.
    url = f"postgresql://USER:{PASSWORD}@127.0.0.1:1/x"

    done = run_cli("--db", url, "start", "--backend", "local", timeout=60)

    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert PASSWORD not in output
    assert "Traceback" not in output
    assert "USER:***@127.0.0.1:1" in output


@pytest.mark.parametrize("given", ["flag", "env"])
def test_an_agent_on_a_database_url_with_a_password_never_prints_it_nor_passes_it_to_its_workloads(
    postgres_url, run_cli, tmp_path, given
):
    # The test cluster trusts every connection: the password is carried, never checked.
    url = with_password(postgres_url, PASSWORD)
    dump = tmp_path / "env.txt"
    setup = APIClient.embedded_api(url)
    run = make_run_factory(setup)(python_env_dump(dump))
    args, env = (["--db", url], {}) if given == "flag" else ([], {"AGENT__SERVER__DB": url})

    done = run_cli(*args, "-v", "start", "--backend", "local", "--until-idle", env={**FAST_AGENT, **env}, timeout=90)

    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert setup.get_flow_run(run["id"])["state"]["type"] == "Success", output[-3000:]
    assert "Embedded API" in output  # the line that names the database
    assert PASSWORD not in output
    assert PASSWORD not in dump.read_text()
    assert [name for name in env_names(dump.read_text()) if name.startswith("AGENT__")] == []
    assert not [m for m in log_messages(setup, run["id"]) if PASSWORD in m]
    setup.close()


def test_an_api_server_on_a_database_url_with_a_password_never_logs_it(postgres_url, agent_env, tmp_path):
    url = with_password(postgres_url, PASSWORD)
    out = tmp_path / "server.out"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [*AGENT_CLI, "-v", "server", "start", "--port", "0", "--db", url],
            env={**agent_env, "AGENT__SERVER__METRICS_TOKEN": TOKEN},
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(lambda: "Serving" in out.read_text() or proc.poll() is not None, 30, message="the server to start")
        served = out.read_text().split(" on ", 1)[1].split()[0]
        client = APIClient(served, retries=0)
        client.register_flow("f", "echo")
        with pytest.raises(NotFound):
            client.get_flow_run("4f0c2a8e-0000-4000-8000-000000000000")
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)

    output = out.read_text()
    assert "***@127.0.0.1" in output
    assert leaks(output, PASSWORD, TOKEN) == []


# --- keys ------------------------------------------------------------------------------------


@pytest.fixture
def auth_server(sqlite_url: str) -> APIServer:
    with APIServer(sqlite_url, auth=True) as running:
        yield running


@pytest.mark.parametrize("given", ["flag", "env"])
def test_the_agents_key_never_reaches_its_log_nor_a_workload_that_was_not_given_it(
    auth_server, start_agent, tmp_path, given
):
    tenant = auth_server.store.ensure_tenant("default")
    _, runner_key = auth_server.store.create_key(tenant, "runner")
    _, admin_key = auth_server.store.create_key(tenant, "admin")
    client = auth_server.client(admin_key)
    dump = tmp_path / "env.txt"
    run = make_run_factory(client)(python_env_dump(dump))
    # A copy of the key in another variable, as `--key "$TOKEN"` leaves it.
    env = {**FAST_AGENT, "AGENT__AGENT__LOG_LEVEL": "DEBUG", "RUNNER_TOKEN": runner_key}
    args = ["--key", runner_key] if given == "flag" else []
    if given == "env":
        env["AGENT__API__KEY"] = runner_key

    agent = start_agent(auth_server, *args, env=env)
    wait_for_state(client, run["id"], agent=agent)
    agent.send(signal.SIGTERM)
    agent.wait(30)

    assert client.get_flow_run(run["id"])["state"]["type"] == "Success"
    assert runner_key not in agent.output() + agent.errors()
    seen = dump.read_text()
    assert runner_key not in seen
    assert "AGENT_API_KEY" not in env_names(seen)
    assert [name for name in env_names(seen) if name.startswith("AGENT__")] == []
    assert not [m for m in log_messages(client, run["id"]) if runner_key in m]


def test_a_docker_workload_gets_neither_the_agents_settings_nor_its_key(
    auth_server, start_agent, docker_engine, busybox_image
):
    from tests.plugins.docker.helpers import TEST_LABEL, remove_labelled

    label = uuid.uuid4().hex[:12]
    tenant = auth_server.store.ensure_tenant("default")
    _, runner_key = auth_server.store.create_key(tenant, "runner")
    _, admin_key = auth_server.store.create_key(tenant, "admin")
    client = auth_server.client(admin_key)
    run = make_run_factory(client)("env")
    settings = {"image": busybox_image, "network_mode": "none", "pull_policy": "never"}
    args = [arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]
    args += ["--set", "container_labels=" + json.dumps({TEST_LABEL: label}), "--key", runner_key]
    env = {**FAST_AGENT, "AGENT__SERVER__DB": f"postgresql://u:{PASSWORD}@db/x", "RUNNER_TOKEN": runner_key}
    try:
        agent = start_agent(auth_server, *args, backend="docker", env=env)
        final = wait_for_state(client, run["id"], agent=agent)
        agent.send(signal.SIGTERM)
        agent.wait(30)
    finally:
        remove_labelled(docker_engine, label)

    seen = "\n".join(log_messages(client, run["id"]))
    assert final["state"]["type"] == "Success", seen
    assert "AGENT_FLOW_RUN_ID=" in seen  # the environment was printed
    assert runner_key[4:] not in seen
    assert leaks(seen, PASSWORD) == []
    assert [name for name in env_names(seen) if name.startswith("AGENT__") or name == "AGENT_API_KEY"] == []
    assert runner_key not in agent.output() + agent.errors()


def test_a_key_the_api_refuses_is_not_printed_in_the_error(auth_server, start_agent):
    refused = "agk_Rf2x-refused-but-secret"

    agent = start_agent(auth_server, "--key", refused, ready=False)

    assert agent.wait(30) != 0
    assert "runner key" in agent.errors()
    assert leaks(agent.output() + agent.errors(), refused[4:]) == []


def test_an_api_url_with_credentials_is_masked_in_every_line_while_the_agent_retries_it(start_agent):
    from tests.e2e.conftest import free_port

    url = f"http://agent:{OTHER_PASSWORD}@127.0.0.1:{free_port()}"

    agent = start_agent(url, "-v", ready=False)
    wait_until(lambda: "unreachable" in agent.output(), 30, message="the agent to report the API unreachable")
    agent.send(signal.SIGTERM)
    agent.wait(30)

    output = agent.output() + agent.errors()
    assert "agent:***@127.0.0.1" in output
    assert OTHER_PASSWORD not in output
    assert "Traceback" not in output


# --- agent config show -----------------------------------------------------------------------


@pytest.fixture
def secrets_everywhere(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """Secrets in a config file, in the environment and in URLs: the environment for the CLI
    and the list of every secret value."""
    config = tmp_path / "agent.toml"
    config.write_text(
        "[agent]\n"
        f'env = {{ DB_PASSWORD = "{ENV_SECRET}", DATABASE_URL = "postgresql://app:{PASSWORD}@db/app", TZ = "UTC" }}\n'
        f'workload_api_key = "agk_workload-{ENV_SECRET}"\n'
        "[server]\n"
        f'metrics_token = "{TOKEN}"\n'
    )
    env = {
        "AGENT_CONFIG": str(config),
        "AGENT__API__URL": f"http://agent:{OTHER_PASSWORD}@127.0.0.1:1",
        "AGENT__API__KEY": "agk_Fe4x-from-the-environment",
        "AGENT__BACKENDS__DOCKER__REGISTRY_PASSWORD": BACKEND_PASSWORD,
    }
    secrets = [ENV_SECRET, PASSWORD, OTHER_PASSWORD, TOKEN, BACKEND_PASSWORD, "Fe4x-from-the-environment"]
    return env, secrets


@pytest.mark.parametrize("output", ["table", "json"])
def test_config_show_shows_nothing_of_any_secret(run_cli, secrets_everywhere, output):
    env, secrets = secrets_everywhere

    done = run_cli("--key", "agk_Ff6x-from-a-flag", "config", "show", "--output", output, env=env)

    shown = done.stdout + done.stderr
    assert done.returncode == 0, shown
    assert leaks(shown, *secrets, "Ff6x-from-a-flag") == []
    assert "agk_" not in shown  # not even a key's prefix
    assert "UTC" in shown  # what is not secret is shown
    if output == "json":
        values = json.loads(done.stdout)
        assert values["api"]["key"] == "***"
        assert values["agent"]["env"]["DATABASE_URL"] == "postgresql://app:***@db/app"
        assert values["agent"]["pass_api_key"] is False  # a switch, not a secret
        assert values["backends"]["docker"]["registry_password"] == "***"


# --- the log handler itself ------------------------------------------------------------------


@pytest.fixture
def logged(request: pytest.FixtureRequest) -> Callable[[str], StringIO]:
    """``logged(fmt)``: the CLI's log handler on a buffer, masking :data:`ENV_SECRET` as a known
    secret value; the root logger's handlers are restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level

    def restore() -> None:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])

    request.addfinalizer(restore)

    def make(fmt: str) -> StringIO:
        buffer = StringIO()
        configure_logging("DEBUG", fmt, buffer, SecretMasker([ENV_SECRET]))
        return buffer

    return make


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_logged_traceback_is_masked_like_the_message(logged, fmt):
    buffer = logged(fmt)

    try:
        raise RuntimeError(f"cannot connect to postgresql://u:{PASSWORD}@h/db with {ENV_SECRET}")
    except RuntimeError:
        logging.getLogger("agent.test").exception("failed for %s", f"redis://:{PASSWORD}@cache/0")

    text = buffer.getvalue()
    assert "RuntimeError" in text
    assert "u:***@h/db" in text
    assert leaks(text, PASSWORD, ENV_SECRET) == []
