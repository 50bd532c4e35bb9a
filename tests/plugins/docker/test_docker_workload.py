"""The workload contract on the docker backend: the shared environment table, the API URL a
container can reach, output off, and the containers an agent leaves when it stops.

Only loopback may be reached here, so the one container that calls the API uses the host
network; the bridge rewrite is checked on the container's configuration (``docker inspect``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.testing import workload_env
from agent_core.testing.harness import AgentThread, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer
from tests.plugins.docker.helpers import containers_of, create_run, log_messages

StartAgent = Callable[..., AgentThread]


def the_container(engine: docker.DockerClient, run_id: str) -> Any:
    [container] = containers_of(engine, run_id)
    return container


def env_of(container: Any) -> dict[str, str]:
    return dict(entry.partition("=")[::2] for entry in container.attrs["Config"]["Env"])


def test_the_workload_sees_the_environment_of_the_shared_table_and_nothing_of_the_agents_own(
    client: APIClient,
    start_agent: StartAgent,
    python_image: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = workload_env.create_agent_key(client)
    for name, value in workload_env.process_environment(key).items():
        monkeypatch.setenv(name, value)  # the agent's own environment: a container gets none of it
    flow = client.register_flow("env-table-docker", workload_env.dump_command("python3"))
    run = client.create_flow_run(
        flow_id=flow["id"],
        parameters=workload_env.PARAMETERS,
        run_config={"type": "docker", "image": python_image, "env": workload_env.run_config_env()},
    )
    thread = start_agent(key=key, plugins=[workload_env.EnvTableHook()], **workload_env.agent_settings())
    final = wait_for_final(client, run["id"], 30)
    thread.stop()

    assert final["state"]["type"] == "Success", final["state"]
    env = workload_env.parse_dump(log_messages(client, run["id"]))
    assert env is not None, log_messages(client, run["id"])
    assert workload_env.mismatches(env, final, key, inherits=False) == []


def test_on_a_bridge_network_a_loopback_api_url_becomes_the_host_gateway(
    server: APIServer,
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rewritten = create_run(client, "true", {"type": "docker", "auto_remove": False})
    chosen = create_run(
        client, "true", {"type": "docker", "auto_remove": False, "env": {"AGENT_API_URL": "http://127.0.0.1:9"}}
    )
    with caplog.at_level(logging.WARNING):
        thread = start_agent(backend={"network_mode": None})  # the engine's default network
    for run in (rewritten, chosen):
        assert wait_for_final(client, run["id"], 20)["state"]["type"] == "Success"
    thread.stop()

    port = server.url.rsplit(":", 1)[1]
    container = the_container(docker_engine, rewritten["id"])
    assert env_of(container)["AGENT_API_URL"] == f"http://host.docker.internal:{port}"
    assert container.attrs["HostConfig"]["ExtraHosts"] == ["host.docker.internal:host-gateway"]
    # A URL a layer chose is the operator's business: left as it is, and no mapping needed.
    other = the_container(docker_engine, chosen["id"])
    assert env_of(other)["AGENT_API_URL"] == "http://127.0.0.1:9"
    assert not other.attrs["HostConfig"]["ExtraHosts"]
    warnings = [r.getMessage() for r in caplog.records if "host.docker.internal" in r.getMessage()]
    assert warnings and "must listen there too" in warnings[0], caplog.text


def test_on_the_host_network_a_container_reaches_the_api_at_the_agents_own_url(
    server: APIServer,
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    python_image: str,
) -> None:
    probe = (
        "import json, os, urllib.request; "
        "answer = json.load(urllib.request.urlopen(os.environ['AGENT_API_URL'] + '/api/hello', timeout=10)); "
        "print('hello from', answer['name'])"
    )
    run = create_run(
        client,
        f'python3 -c "{probe}"',
        {"type": "docker", "image": python_image, "network_mode": "host", "auto_remove": False},
    )
    thread = start_agent()
    final = wait_for_final(client, run["id"], 30)
    thread.stop()

    assert final["state"]["type"] == "Success", final["state"]
    assert any(line.startswith("hello from") for line in log_messages(client, run["id"]))
    container = the_container(docker_engine, run["id"])
    assert env_of(container)["AGENT_API_URL"] == server.url
    assert not container.attrs["HostConfig"]["ExtraHosts"]


@pytest.mark.parametrize(
    ("agent_settings", "run_config"),
    [({"ship_output": False}, {}), ({}, {"ship_output": False})],
    ids=["agent-off", "run-config-off"],
)
def test_with_output_off_only_the_agents_own_lines_reach_the_runs_logs(
    client: APIClient, start_agent: StartAgent, agent_settings: dict[str, Any], run_config: dict[str, Any]
) -> None:
    run = create_run(
        client, "sh -c 'echo kept-in-the-engine; echo also-kept >&2; exit 4'", {"type": "docker", **run_config}
    )
    thread = start_agent(**agent_settings)
    final = wait_for_final(client, run["id"], 20)
    thread.stop()

    assert final["state"]["type"] == "Failed"
    assert final["state"]["message"] == "Exited with code 4"  # no output tail either
    messages = log_messages(client, run["id"])
    assert any(m.startswith("Submitted for execution: container") for m in messages)
    assert "kept-in-the-engine" not in messages and "also-kept" not in messages


def test_an_agent_that_stops_removes_the_containers_of_its_finished_runs_and_keeps_the_running_ones(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    finished = create_run(client, "echo finished")
    kept = create_run(client, "echo kept", {"type": "docker", "auto_remove": False})
    running = create_run(client, "sleep 60")
    # A heartbeat only every minute: nothing but the shutdown can reap them in time.
    thread = start_agent(heartbeat_period=60.0)
    for run in (finished, kept):
        assert wait_for_final(client, run["id"], 20)["state"]["type"] == "Success"
    wait_for_state(client, running["id"], ["Running"], 20)
    assert len(containers_of(docker_engine, finished["id"])) == 1

    thread.stop()  # what SIGTERM does, after the drain

    assert containers_of(docker_engine, finished["id"]) == []
    assert len(containers_of(docker_engine, kept["id"])) == 1  # auto_remove: false
    [still] = containers_of(docker_engine, running["id"])
    assert still.status == "running"  # a restarted agent re-attaches to it


def test_an_agent_stopping_when_idle_leaves_no_container_behind(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient
) -> None:
    runs = [create_run(client, f"echo run-{n}") for n in range(3)]
    thread = start_agent(until_idle=True, heartbeat_period=60.0)
    thread.thread.join(60)

    assert not thread.thread.is_alive(), "--until-idle did not stop the agent"
    assert [client.get_flow_run(run["id"])["state"]["type"] for run in runs] == ["Success"] * 3
    assert wait_until(lambda: all(not containers_of(docker_engine, run["id"]) for run in runs), 1)
