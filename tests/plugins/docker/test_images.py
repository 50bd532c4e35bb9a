"""Which images an agent may run and how many pulls a run may ask for.

How an image names its registry and how the allow-list matches are core's rule, tested in
tests/core/test_images.py; here are the docker backend's refusals, and the real engine agreeing
with core's parse of image references (the one test that needs the engine).
"""

from __future__ import annotations

import uuid

import docker
import pytest

from agent_core.errors import DeploymentError
from agent_core.images import parse_image
from agent_plugin_docker.images import check_allowed, pull_policy


def test_a_refused_image_names_its_registry_and_the_list() -> None:
    with pytest.raises(DeploymentError) as info:
        check_allowed("evil.example/x:1", ["registry.example.com", "docker.io"])

    assert str(info.value) == (
        "image 'evil.example/x:1' is from registry 'evil.example', which this agent does not allow "
        "(allowed_registries: registry.example.com, docker.io); nothing was pulled or started"
    )
    check_allowed("evil.example/x:1", [])  # no list: anything goes


@pytest.mark.parametrize(
    ("asked", "agent", "policy"),
    [
        (None, "never", "never"),
        (None, "always", "always"),
        ("never", "always", "never"),
        ("if-not-present", "always", "if-not-present"),
        ("never", "if-not-present", "never"),
        ("if-not-present", "if-not-present", "if-not-present"),
    ],
)
def test_a_run_may_ask_for_the_agents_pull_policy_or_fewer_pulls(asked: str | None, agent: str, policy: str) -> None:
    assert pull_policy(asked, agent) == policy


@pytest.mark.parametrize(
    ("asked", "agent"), [("always", "never"), ("if-not-present", "never"), ("always", "if-not-present")]
)
def test_a_run_asking_for_more_pulls_than_its_agent_is_refused(asked: str, agent: str) -> None:
    with pytest.raises(DeploymentError) as info:
        pull_policy(asked, agent)

    assert f"asks for pull_policy {asked!r}, but this agent's pull policy is {agent!r}" in str(info.value)


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "team/etl:2.3",
        "docker.io/busybox:1",
        "index.docker.io/library/busybox:2",
        "localhost/built-here",
        "localhost:5000/x",
        "127.0.0.1:5000/team/x:1",
        "registry.example:443/a/b:tag",
        "foo:5000",
    ],
)
def test_the_engine_files_an_image_under_the_name_core_resolves_it_to(
    docker_engine: docker.DockerClient, busybox_image: str, image: str
) -> None:
    # Tagged as written, the image is found again under the fully qualified name core gives it:
    # the engine's own parse puts it in the same registry and path.
    ref = parse_image(image)
    suffix = uuid.uuid4().hex[:8]
    written = f"{image.rpartition(':')[0] if ref.tag else image}:{ref.tag or 'latest'}-{suffix}"
    qualified = f"{ref.name}:{ref.tag or 'latest'}-{suffix}"
    source = docker_engine.images.get(busybox_image)
    assert source.tag(written)
    try:
        assert docker_engine.images.get(qualified).id == source.id
    finally:
        docker_engine.images.remove(written)
