"""The operator's registry allow-list (``allowed_registries``): which images a task may run.

The same rule as the docker backend's: an image reference resolves to ``(registry, path)`` the
way Docker (and so ECS's container agent and Fargate) resolves it (``python:3.12`` is
``docker.io/library/python``), and an entry is ``host[:port]`` or ``host[:port]/path``. Every
container of the task definition a run would use is checked (sidecars too), before anything is
registered or started: a run config names images through ``image`` and through a task
definition of its own. No library is needed for this (the docker SDK is not a dependency here).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agent_core.errors import DeploymentError

DOCKER_HUB = "docker.io"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def registry_of(image: str) -> tuple[str, str]:
    """``(registry, repository path)`` of an image reference, as Docker resolves them.

    ``python:3.12`` -> ``("docker.io", "library/python")``;
    ``123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/etl:1`` ->
    ``("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "team/etl")``.

    :raise DeploymentError: not an image reference.
    """
    name = image.strip().partition("@")[0]
    head, slash, last = name.rpartition("/")
    repository = f"{head}{slash}{last.partition(':')[0]}"  # without the tag
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry, path = normalize_registry(first), rest
    else:
        registry, path = DOCKER_HUB, repository
    if not path or path.startswith("/") or path.endswith("/") or "//" in path or any(c.isspace() for c in path):
        raise DeploymentError(f"invalid image name {image!r}")
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return registry, path


def normalize_registry(entry: str) -> str:
    """An allow-list entry as compared: no scheme, no trailing slash, lower-case host, Hub aliases."""
    text = entry.strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    host, sep, path = text.partition("/")
    host = host.lower()
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
    return f"{host}{sep}{path}"


def allowed(image: str, registries: Iterable[str]) -> bool:
    """Whether ``image`` comes from one of ``registries`` (``host[:port]`` or ``host[:port]/path``)."""
    registry, path = registry_of(image)
    for entry in registries:
        host, _, prefix = normalize_registry(entry).partition("/")
        if host == registry and (not prefix or path == prefix or path.startswith(prefix + "/")):
            return True
    return False


def check_definition(params: dict[str, Any], registries: list[str], source: str) -> None:
    """Every container image of a task definition's ``params`` is from ``registries`` (if set).

    :param source: names the definition in the message ("task definition etl:3").
    :raise DeploymentError: one is not, naming the container, its registry and the list.
    """
    if not registries:
        return
    for container in params.get("containerDefinitions") or []:
        image = str(container.get("image") or "")
        if image and not allowed(image, registries):
            registry, _ = registry_of(image)
            raise DeploymentError(
                f"image {image!r} (container {container.get('name', '?')!r} of {source}) is from registry "
                f"{registry!r}, which this agent does not allow (allowed_registries: {', '.join(registries)}); "
                "nothing was registered or started"
            )
