"""Which images an agent may run and how many pulls a run may ask for (no engine needed)."""

from __future__ import annotations

import pytest

from agent_core.errors import DeploymentError
from agent_plugin_docker.images import allowed, check_allowed, pull_policy, registry_of


@pytest.mark.parametrize(
    ("image", "registry"),
    [
        ("python:3.12", ("docker.io", "library/python")),
        ("team/etl", ("docker.io", "team/etl")),
        ("index.docker.io/library/busybox", ("docker.io", "library/busybox")),
        ("registry.example.com:5000/team/etl:2.3", ("registry.example.com:5000", "team/etl")),
        ("ghcr.io/org/img@sha256:" + "a" * 64, ("ghcr.io", "org/img")),
        ("localhost/built-here", ("localhost", "built-here")),
    ],
)
def test_an_image_names_its_registry_as_the_engine_resolves_it(image: str, registry: tuple[str, str]) -> None:
    assert registry_of(image) == registry


@pytest.mark.parametrize(
    ("image", "entries", "ok"),
    [
        ("registry.example.com/team/etl:1", ["registry.example.com"], True),
        ("registry.example.com/team/etl:1", ["https://Registry.Example.com/"], True),
        ("registry.example.com/team/etl:1", ["registry.example.com/team"], True),
        ("registry.example.com/teammate/x:1", ["registry.example.com/team"], False),
        ("registry.example.com:5000/team/etl:1", ["registry.example.com"], False),
        ("python:3.12", ["docker.io"], True),
        ("python:3.12", ["index.docker.io/library"], True),
        ("someone/python:3.12", ["docker.io/library"], False),
        ("evil.example/python:3.12", ["registry.example.com", "docker.io"], False),
    ],
)
def test_the_allow_list_matches_registries_and_path_prefixes(image: str, entries: list[str], ok: bool) -> None:
    assert allowed(image, entries) is ok


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
