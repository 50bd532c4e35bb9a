"""Image references and the registry allow-list (``agent_core.images``), checked against docker's own parse.

Core parses references without any SDK. The docker backend used to resolve them with the docker
SDK (``parse_repository_tag`` then ``resolve_repository_name``); each reference below is resolved
both ways, so the table shows where the two agree and, case by case, where the SDK's shortcut
departs from the grammar the engine itself uses (and core follows the engine).
"""

from __future__ import annotations

import pytest

from agent_core.errors import DeploymentError, InvalidImageName
from agent_core.images import (
    ImageReference,
    allowed,
    normalize_registry,
    parse_image,
    refused_registry,
    registry_entry_problem,
    registry_of,
)

DIGEST = "sha256:" + "a" * 64


def docker_sdk_registry_of(image: str) -> tuple[str, str]:
    """The docker backend's former resolution: the docker SDK's parse, then the allow-list's normalisation."""
    docker_auth = pytest.importorskip("docker.auth")
    docker_utils = pytest.importorskip("docker.utils")
    repository, _ = docker_utils.parse_repository_tag(image)
    registry, path = docker_auth.resolve_repository_name(repository)
    registry = normalize_registry(registry)
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return registry, path


AGREED = [
    ("busybox", "docker.io", "library/busybox"),
    ("busybox:1.36", "docker.io", "library/busybox"),
    ("python:3.12", "docker.io", "library/python"),
    ("team/etl:2.3", "docker.io", "team/etl"),
    ("docker.io/busybox", "docker.io", "library/busybox"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox"),
    ("registry-1.docker.io/busybox", "docker.io", "library/busybox"),
    ("localhost", "docker.io", "library/localhost"),  # a bare name is a Hub image, even this one
    ("foo:5000", "docker.io", "library/foo"),  # no slash: 5000 is a tag, not a port
    ("localhost/built-here", "localhost", "built-here"),
    ("localhost:5000/x", "localhost:5000", "x"),
    ("127.0.0.1:5000/team/x:1", "127.0.0.1:5000", "team/x"),
    ("[::1]:5000/x", "[::1]:5000", "x"),
    ("[::1]:5000/x:1.0", "[::1]:5000", "x"),
    ("registry.example:443/a/b:tag", "registry.example:443", "a/b"),
    ("Registry.Example.com/team/etl", "registry.example.com", "team/etl"),
    ("registry.example.com:5000/team/etl@" + DIGEST, "registry.example.com:5000", "team/etl"),
    ("ghcr.io/org/img@" + DIGEST, "ghcr.io", "org/img"),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl:1", "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "etl"),
    ("public.ecr.aws/docker/library/busybox:latest", "public.ecr.aws", "docker/library/busybox"),
    ("registry.example/a.b/c__d/e-f--g:v1.2_3", "registry.example", "a.b/c__d/e-f--g"),
]


@pytest.mark.parametrize(("image", "registry", "path"), AGREED)
def test_an_image_resolves_to_the_registry_and_path_docker_resolves_it_to(image: str, registry: str, path: str) -> None:
    assert registry_of(image) == (registry, path)
    assert docker_sdk_registry_of(image) == (registry, path)


@pytest.mark.parametrize(
    ("image", "core", "sdk"),
    [
        # A tag and a digest: the SDK splits at "@" only, leaving ":tag" in the repository path
        # (so a path entry such as registry.example:443/a/b would not match); the engine drops the tag.
        (f"registry.example:443/a/b:t@{DIGEST}", ("registry.example:443", "a/b"), ("registry.example:443", "a/b:t")),
        # An upper-case first component cannot be a Hub user: the engine takes it for a registry.
        ("Foo/bar", ("foo", "bar"), ("docker.io", "Foo/bar")),
    ],
)
def test_where_the_docker_sdk_shortcuts_the_reference_grammar_core_follows_the_engine(
    image: str, core: tuple[str, str], sdk: tuple[str, str]
) -> None:
    assert registry_of(image) == core
    assert docker_sdk_registry_of(image) == sdk


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("UPPER", "the repository name must be lower-case"),
        ("team/Etl", "the repository name must be lower-case"),
        ("x@sha256:abc", "is not a digest"),
        ("team/etl:1:2", "is not a tag"),
        ("bad-.example/x", "is not a registry"),  # the SDK checks only the ends of the host
        ("x:-tag", "is not a tag"),
        ("a" * 64, "an image id names no registry"),
        (DIGEST, "an image id names no registry"),
        ("team//etl", "is not a repository path"),
        ("team/etl/", "is not a repository path"),
        (" busybox", "is not a repository path"),
        ("", "empty"),
    ],
)
def test_what_the_engine_would_refuse_is_not_an_image_name(image: str, why: str) -> None:
    with pytest.raises(InvalidImageName) as info:
        parse_image(image)
    assert why in str(info.value)
    assert isinstance(info.value, DeploymentError)  # fails the run that names it


@pytest.mark.parametrize("image", ["http://registry.example/x", "-bad.example/x", "registry.example-/x"])
def test_a_name_both_docker_and_core_refuse_is_not_an_image_name(image: str) -> None:
    docker_errors = pytest.importorskip("docker.errors")
    with pytest.raises(InvalidImageName):
        registry_of(image)
    with pytest.raises(docker_errors.InvalidRepository):
        docker_sdk_registry_of(image)


def test_a_reference_keeps_its_tag_and_digest_apart_from_its_name() -> None:
    assert parse_image(f"registry.example:443/a/b:tag@{DIGEST}") == ImageReference(
        registry="registry.example:443", path="a/b", tag="tag", digest=DIGEST
    )
    assert parse_image("busybox").name == "docker.io/library/busybox"
    assert parse_image("busybox").tag is None


@pytest.mark.parametrize(
    ("image", "entries", "ok"),
    [
        ("registry.example.com/team/etl:1", ["registry.example.com"], True),
        ("registry.example.com/team/etl:1", ["https://Registry.Example.com/"], True),
        ("registry.example.com/team/etl:1", ["registry.example.com/team"], True),
        ("registry.example.com/teammate/x:1", ["registry.example.com/team"], False),
        ("registry.example.com:5000/team/etl:1", ["registry.example.com"], False),
        (f"registry.example:443/a/b:tag@{DIGEST}", ["registry.example:443/a/b"], True),
        ("[::1]:5000/x", ["[::1]:5000"], True),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl:1", ["123456789012.dkr.ecr.eu-west-1.amazonaws.com"], True),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/etl:1", ["123456789012.dkr.ecr.us-east-1.amazonaws.com"], False),
        ("public.ecr.aws/docker/library/busybox", ["public.ecr.aws/docker"], True),
        ("public.ecr.aws/dockerish/x", ["public.ecr.aws/docker"], False),
        ("python:3.12", ["docker.io"], True),
        ("python:3.12", ["index.docker.io/library"], True),
        ("registry-1.docker.io/someone/x", ["docker.io/library"], False),
        ("someone/python:3.12", ["docker.io/library"], False),
        ("evil.example/python:3.12", ["registry.example.com", "docker.io"], False),
    ],
)
def test_the_allow_list_matches_registries_and_whole_path_prefixes(image: str, entries: list[str], ok: bool) -> None:
    assert allowed(image, entries) is ok


def test_a_refused_image_names_its_registry_and_an_empty_list_refuses_nothing() -> None:
    assert refused_registry("evil.example/x:1", ["registry.example.com", "docker.io"]) == "evil.example"
    assert refused_registry("python:3.12", ["docker.io"]) is None
    assert refused_registry("not an image", []) is None  # no list: nothing is parsed or refused


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ("registry.example.com", True),
        ("https://registry.example.com/", True),
        ("registry.example.com:5000/team", True),
        ("[::1]:5000", True),
        ("docker.io/library", True),
        ("not a registry", False),
        ("*.example.com", False),
        ("user@registry.example.com", False),
        ("registry.example.com/Team", False),
        ("", False),
    ],
)
def test_an_allow_list_entry_is_a_registry_with_an_optional_path(entry: str, ok: bool) -> None:
    problem = registry_entry_problem(entry)
    assert (problem is None) is ok
    if problem:
        assert problem == (
            f"invalid registry {entry!r}: write host[:port] or host[:port]/path (registry.example.com/team)"
        )
