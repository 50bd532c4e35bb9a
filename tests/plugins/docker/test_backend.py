"""The docker backend against the real engine, through a real agent and API server.

Agents run in threads (``start_agent``); every run is a busybox container with no network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.engine.agent import Agent
from agent_core.engine.settings import AgentSettings
from agent_core.models import Deployment, FlowRun
from agent_core.plugins import get_plugin_manager
from agent_core.testing.harness import AgentThread, history_types, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from agent_plugin_docker.exits import exit_reason, oom_event, oom_killed
from agent_plugin_docker.options import create_options
from agent_plugin_docker.state import state_of
from tests.plugins.docker.helpers import containers_of, create_run, log_messages

StartAgent = Callable[..., AgentThread]


def test_a_run_succeeds_with_its_output_env_and_labels(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    run = create_run(
        client,
        "sh -c 'echo hello; echo \"run=$AGENT_FLOW_RUN_ID attempt=$AGENT_FLOW_RUN_ATTEMPT x=$X\"; echo oops >&2'",
        {"type": "docker", "env": {"X": "from-run-config"}, "auto_remove": False},
    )
    agent = start_agent(env={"X": "from-agent", "Y": "agent-only"})
    final = wait_for_final(client, run["id"], 20)
    agent.stop()  # flushes the run logs

    assert final["state"]["type"] == "Success", final["state"]
    assert history_types(client, run["id"]) == ["Scheduled", "Submitted", "Running", "Success"]
    logs = log_messages(client, run["id"])
    name = f"agent-run-{run['id']}-1"
    assert any(m.startswith(f"Submitted for execution: container {name}") for m in logs), logs
    assert "hello" in logs and "oops" in logs
    assert f"run={run['id']} attempt=1 x=from-run-config" in logs
    assert final["deployment"]["backend"] == "docker"

    [container] = containers_of(docker_engine, run["id"])
    assert container.name == name
    assert container.labels["agent.attempt"] == "1"
    assert container.labels["agent.agent_name"] == agent.agent.name
    assert container.labels["agent.backend"] == "docker"
    assert container.labels["agent.flow_id"] == run["flow_id"]
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert not container.attrs["HostConfig"]["AutoRemove"]  # the exit code must outlive the container
    assert "Y=agent-only" in container.attrs["Config"]["Env"]


def test_a_non_zero_exit_fails_the_run_with_the_code_and_the_output_tail(
    client: APIClient, start_agent: StartAgent
) -> None:
    run = create_run(client, "sh -c 'echo first; echo last >&2; exit 3'")
    start_agent()
    final = wait_for_final(client, run["id"], 20)
    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert message.startswith("Exited with code 3")
    # stdout and stderr are separate pipes: their relative order is not kept.
    assert sorted(message.splitlines()[-2:]) == ["first", "last"]


def test_an_oom_killed_container_fails_the_run_naming_the_oom(client: APIClient, start_agent: StartAgent) -> None:
    run = create_run(
        client,
        # The pause: an OOM kill in a container's first milliseconds can escape the engine.
        "sh -c 'echo allocating; sleep 0.3; x=$(head -c 64m /dev/zero | tr \"\\0\" x); echo survived'",
        {"type": "docker", "mem_limit": "8m"},
    )
    start_agent()
    final = wait_for_final(client, run["id"], 30)
    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert "code 137" in message
    assert "OOM-killed" in message and "8 MiB" in message
    assert "survived" not in message


def test_cancel_stops_the_container_within_the_grace_period(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    run = create_run(client, "sleep 300", {"type": "docker", "auto_remove": False})
    start_agent(cancel_grace_seconds=1.0)
    wait_for_state(client, run["id"], ["Running"], 20)
    asked = time.monotonic()
    client.cancel_flow_run(run["id"])
    final = wait_for_final(client, run["id"], 15)
    took = time.monotonic() - asked
    assert final["state"]["type"] == "Cancelled"
    # `sleep` as PID 1 ignores SIGTERM: docker kills it once the grace second is over.
    assert took < 1.0 + 4, took
    [container] = containers_of(docker_engine, run["id"])
    assert container.status == "exited"
    assert container.attrs["State"]["ExitCode"] == 137


@pytest.mark.parametrize(
    ("run_config", "words"),
    [
        (
            {"image": "agent-test-no-such-image:1", "pull_policy": "never"},
            "image 'agent-test-no-such-image:1' is not present on the Docker host and the pull policy is 'never'",
        ),
        ({"networks": ["agent-test-no-such-network"]}, "network agent-test-no-such-network not found"),
        ({"volumes": ["data"]}, "invalid volume spec 'data'"),
        ({"volumes": ["/tmp:/data:ro,rw"]}, "invalid mode: ro,rw"),
        ({"command": "no-such-program --flag"}, "executable file not found"),
        ({"create_options": {"no_such_option": 1}}, "no_such_option"),
        ({"mem_limit": "1k"}, "Minimum memory limit"),
    ],
    ids=["unknown-image", "bad-network", "volume-spec", "volume-mode", "missing-command", "bad-option", "tiny-memory"],
)
def test_bad_input_fails_the_run_with_a_message_naming_the_problem(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    run_config: dict[str, Any],
    words: str,
) -> None:
    run = create_run(client, "echo never", {"type": "docker", **run_config})
    thread = start_agent()
    final = wait_for_final(client, run["id"], 20)
    assert final["state"]["type"] == "Failed"
    assert words in final["state"]["message"]
    thread.stop()
    assert any(words in m for m in log_messages(client, run["id"]))
    # A failed start leaves no `created` container behind.
    assert containers_of(docker_engine, run["id"]) == []


def test_a_second_launch_of_the_same_attempt_returns_the_existing_container(
    server: APIServer, client: APIClient, backend_settings: dict[str, Any], docker_engine: docker.DockerClient
) -> None:
    run = FlowRun.from_api(create_run(client, "sleep 30"))
    settings = AgentSettings(backend="docker", name="docker-relaunch", backend_settings=backend_settings)
    agent = Agent(settings, server.client(), get_plugin_manager("docker"))
    agent.load_backend_contract()
    run_config = agent.run_config_schema.load({})  # type: ignore[union-attr]
    try:
        first = agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)
        second = agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)
    finally:
        agent.pm.hook.on_shutdown(agent=agent)
    assert first.platform_id == second.platform_id
    assert len(containers_of(docker_engine, run.id)) == 1


def test_a_container_left_created_by_a_dead_agent_is_started_on_relaunch(
    server: APIServer, client: APIClient, backend_settings: dict[str, Any], docker_engine: docker.DockerClient
) -> None:
    run = FlowRun.from_api(create_run(client, "sh -c 'echo started'"))
    settings = AgentSettings(backend="docker", name="docker-created", backend_settings=backend_settings)
    agent = Agent(settings, server.client(), get_plugin_manager("docker"))
    agent.load_backend_contract()
    run_config = agent.run_config_schema.load({})  # type: ignore[union-attr]
    options = create_options(run, run_config, agent, backend_settings["image"])
    created = docker_engine.containers.create(**options)  # as if the agent died right here
    try:
        deployment = agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)
        assert deployment.platform_id == created.id
        created.reload()
        assert created.status in ("running", "exited")
    finally:
        agent.pm.hook.on_shutdown(agent=agent)


def test_a_universal_run_config_runs_with_the_agent_defaults(client: APIClient, start_agent: StartAgent) -> None:
    run = create_run(client, "sh -c 'echo \"v=$V\"'", {"type": "universal", "env": {"V": "universal"}})
    thread = start_agent()
    final = wait_for_final(client, run["id"], 20)
    thread.stop()
    assert final["state"]["type"] == "Success"
    assert "v=universal" in log_messages(client, run["id"])


def test_containers_are_removed_once_their_run_is_final(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    backend_settings: dict[str, Any],
) -> None:
    kept = create_run(client, "echo kept", {"type": "docker", "auto_remove": False})
    removed = create_run(client, "echo removed")
    thread = start_agent(heartbeat_period=0.2)
    state_of(thread.agent).reap_min_age = 0.0
    for run in (kept, removed):
        assert wait_for_final(client, run["id"], 20)["state"]["type"] == "Success"
    assert wait_until(lambda: not containers_of(docker_engine, removed["id"]), 10), "not reaped"
    assert len(containers_of(docker_engine, kept["id"])) == 1
    state_dir = Path(backend_settings["state_dir"])
    assert wait_until(lambda: not list(state_dir.glob("*.json")), 10), list(state_dir.iterdir())


def test_a_container_removed_behind_the_agents_back_fails_the_run(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    run = create_run(client, "sleep 60")
    start_agent()
    running = wait_for_state(client, run["id"], ["Running"], 20)
    docker_engine.containers.get(Deployment.from_dict(running["deployment"]).platform_id).remove(force=True)
    final = wait_for_final(client, run["id"], 20)
    assert final["state"]["type"] == "Failed"
    assert "no longer exists" in final["state"]["message"]


def test_preflight_reports_the_daemon_api_version_and_default_image(
    server: APIServer, backend_settings: dict[str, Any], tmp_path: Path
) -> None:
    def checks(**overrides: Any) -> dict[str, tuple[bool, str]]:
        settings = AgentSettings(
            backend="docker", name="docker-doctor", backend_settings={**backend_settings, **overrides}
        )
        agent = Agent(settings, server.client(), get_plugin_manager("docker"))
        agent.load_backend_contract()
        try:
            return {check.name: (check.ok, check.detail) for check in agent.preflight()}
        finally:
            agent.pm.hook.on_shutdown(agent=agent)

    good = checks()
    assert good["docker daemon reachable"][0]
    assert good["docker API version"][0]
    assert good[f"default image {backend_settings['image']}"] == (True, "present on the Docker host")

    missing = checks(image="agent-test-no-such-image:1")
    assert missing["default image agent-test-no-such-image:1"][0] is False
    assert "'never'" in missing["default image agent-test-no-such-image:1"][1]

    down = checks(base_url=f"unix://{tmp_path / 'nothing.sock'}")
    assert list(down) == ["docker daemon reachable"]
    ok, detail = down["docker daemon reachable"]
    assert not ok and "nothing.sock is unreachable" in detail


def test_an_oom_kill_is_recognised_from_the_engine_events_too(
    docker_engine: docker.DockerClient, busybox_image: str, test_id: str
) -> None:
    # The engine's OOMKilled flag can lose a race with the exit under load; the "oom" event is
    # the second source. Here both sources are checked on a real OOM kill and a plain SIGKILL.
    labels = {"agent.test": test_id}
    oom = docker_engine.containers.create(
        busybox_image,
        ["sh", "-c", "sleep 0.3; x=$(head -c 64m /dev/zero | tr '\\0' x)"],
        network_mode="none",
        mem_limit="8m",
        labels=labels,
    )
    killed = docker_engine.containers.create(busybox_image, ["sleep", "60"], network_mode="none", labels=labels)
    limited = docker_engine.containers.create(
        busybox_image, ["sleep", "60"], network_mode="none", mem_limit="64m", labels=labels
    )
    for container in (oom, killed, limited):
        container.start()
    killed.kill()
    limited.kill()
    for container in (oom, killed, limited):
        container.wait(timeout=30)
        container.reload()
        assert container.attrs["State"]["ExitCode"] == 137
    assert oom_event(oom)
    assert oom_killed(oom, 137)
    assert not oom_event(killed)
    assert not oom_killed(killed, 137)
    assert exit_reason(killed, 137) == "killed by signal 9"
    # With a memory limit, an unexplained SIGKILL is reported as a possible OOM kill.
    assert "perhaps out of memory" in exit_reason(limited, 137)
    assert "64 MiB" in exit_reason(limited, 137)


def test_failed_preflight_checks_say_how_to_fix_them(
    server: APIServer, backend_settings: dict[str, Any], tmp_path: Path
) -> None:
    def failed(**overrides: Any) -> dict[str, str]:
        settings = AgentSettings(
            backend="docker", name="docker-fix", backend_settings={**backend_settings, **overrides}
        )
        agent = Agent(settings, server.client(), get_plugin_manager("docker"))
        agent.load_backend_contract()
        try:
            return {check.name: check.fix for check in agent.preflight() if not check.ok}
        finally:
            agent.pm.hook.on_shutdown(agent=agent)

    assert "--set base_url=" in failed(base_url=f"unix://{tmp_path / 'nothing.sock'}")["docker daemon reachable"]
    fix = failed(image="agent-test-no-such-image:1")["default image agent-test-no-such-image:1"]
    assert "docker pull agent-test-no-such-image:1" in fix and "pull_policy=if-not-present" in fix
