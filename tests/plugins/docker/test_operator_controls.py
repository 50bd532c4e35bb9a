"""What an operator can forbid, on the real engine: other registries, pulls, bare volume paths.

Each refused run must fail before the engine does anything for it. Two witnesses say it did
not: the engine's own event stream (no container created or started for the run, no image
pulled), and a listener on loopback standing where the image's registry would be, which
counts the engine's connections (a pull that was tried). A control test shows the listener
does see a pull when one is allowed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest

from agent_core.client import APIClient
from agent_core.errors import ConfigError
from agent_core.testing.harness import AgentThread, wait_for_final
from tests.plugins.docker.helpers import RegistryListener, containers_of, create_run, engine_events

StartAgent = Callable[..., AgentThread]
CREATED = {("container", "create"), ("container", "start")}


@pytest.fixture
def registry() -> Iterator[RegistryListener]:
    listener = RegistryListener()
    yield listener
    listener.close()


@pytest.fixture
def remote_image(docker_engine: docker.DockerClient, busybox_image: str, registry: RegistryListener) -> Iterator[str]:
    """The busybox image, also tagged as if it came from ``registry`` (present locally)."""
    repository = f"{registry.host}/agent-test/busybox"
    docker_engine.images.get(busybox_image).tag(repository, "1")
    yield f"{repository}:1"
    docker_engine.images.remove(f"{repository}:1")


def refused(
    client: APIClient, start_agent: StartAgent, engine: docker.DockerClient, run_config: dict[str, Any], **backend: Any
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Run ``echo never`` with ``run_config`` on an agent with ``backend`` settings: (final run, events)."""
    since = time.time()
    run = create_run(client, "echo never", {"type": "docker", **run_config})
    thread = start_agent(backend=backend)
    final = wait_for_final(client, run["id"], 20)
    thread.stop()
    image = run_config.get("image") or thread.agent.backend_settings["image"]
    return final, engine_events(engine, since, run_id=run["id"], image=image)


def test_an_image_from_a_registry_not_allowed_fails_the_run_before_any_pull_or_create(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    registry: RegistryListener,
    remote_image: str,
) -> None:
    final, events = refused(
        client,
        start_agent,
        docker_engine,
        {"image": remote_image},
        allowed_registries="registry.example.com,docker.io/library",
        pull_policy="always",
    )

    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert f"is from registry '{registry.host}', which this agent does not allow" in message
    assert "allowed_registries: registry.example.com, docker.io/library" in message
    assert registry.connections == 0, "the engine was asked to pull"
    assert not CREATED & set(events) and ("image", "pull") not in events, events
    assert containers_of(docker_engine, final["id"]) == []


def test_control_an_allowed_registry_is_pulled_from_and_the_listener_sees_it(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    registry: RegistryListener,
    remote_image: str,
) -> None:
    final, _ = refused(
        client,
        start_agent,
        docker_engine,
        {"image": remote_image},
        allowed_registries=f"{registry.host},docker.io/library",  # docker.io: the default image's
        pull_policy="always",
    )

    assert final["state"]["type"] == "Failed"
    assert f"cannot pull image '{remote_image}'" in final["state"]["message"]
    assert registry.connections > 0


@pytest.mark.parametrize("asked", ["always", "if-not-present"])
def test_a_run_config_cannot_lift_the_agents_pull_policy_never(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    registry: RegistryListener,
    remote_image: str,
    asked: str,
) -> None:
    final, events = refused(
        client, start_agent, docker_engine, {"image": remote_image, "pull_policy": asked}, pull_policy="never"
    )

    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert f"the run config asks for pull_policy '{asked}', but this agent's pull policy is 'never'" in message
    assert "never < if-not-present < always" in message
    assert registry.connections == 0
    assert not CREATED & set(events) and ("image", "pull") not in events, events


def test_a_run_config_may_ask_for_fewer_pulls_than_the_agent(
    client: APIClient,
    start_agent: StartAgent,
    docker_engine: docker.DockerClient,
    registry: RegistryListener,
    remote_image: str,
) -> None:
    since = time.time()
    run = create_run(
        client, "echo ran-without-a-pull", {"type": "docker", "image": remote_image, "pull_policy": "never"}
    )
    thread = start_agent(backend={"pull_policy": "always"})
    final = wait_for_final(client, run["id"], 20)
    thread.stop()

    assert final["state"]["type"] == "Success", final["state"]
    assert registry.connections == 0
    # The control of the event witness: it does see this run's container.
    assert set(engine_events(docker_engine, since, run_id=run["id"], image=remote_image)) >= CREATED


def test_a_bare_volume_path_in_a_run_config_fails_the_run_without_a_container(
    client: APIClient, start_agent: StartAgent, docker_engine: docker.DockerClient, busybox_image: str
) -> None:
    final, events = refused(client, start_agent, docker_engine, {"volumes": ["/srv/data"]})

    assert final["state"]["type"] == "Failed"
    message = final["state"]["message"]
    assert "invalid volume spec '/srv/data': a bare path mounts an empty anonymous volume" in message
    assert "write /srv/data:/srv/data to bind the host folder" in message
    assert "NAME:/srv/data to mount the named volume NAME" in message
    assert not CREATED & set(events), events


def test_a_bare_volume_path_in_the_settings_stops_the_agent_at_start_up(start_agent: StartAgent) -> None:
    with pytest.raises(ConfigError) as info:
        start_agent(backend={"volumes": "/srv/data"})

    assert "invalid settings for backend 'docker'" in str(info.value)
    assert "write /srv/data:/srv/data to bind the host folder" in str(info.value)


def test_preflight_never_pulls_and_reports_an_absent_pullable_default_image_as_ready(
    start_agent: StartAgent, registry: RegistryListener
) -> None:
    thread = start_agent(backend={"image": f"{registry.host}/agent-test/absent:1", "pull_policy": "always"})
    checks = {check.name: check for check in thread.agent.preflight()}
    thread.stop()

    check = checks[f"default image {registry.host}/agent-test/absent:1"]
    assert check.ok and "not present yet" in check.detail
    assert registry.connections == 0
