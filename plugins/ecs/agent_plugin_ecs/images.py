"""The operator's registry allow-list (``allowed_registries``): which images a task may run.

The rule is core's (``agent_core.images``), the same as the docker backend's: an image reference
resolves to ``(registry, path)`` the way Docker (and so ECS's container agent and Fargate)
resolves it (``python:3.12`` is ``docker.io/library/python``), and an entry is ``host[:port]``
or ``host[:port]/path``. What is ECS's own is where images come from: every container of the
task definition a run would use is checked (sidecars too), before anything is registered or
started, since a run config names images through ``image`` and through a task definition of
its own.
"""

from __future__ import annotations

from typing import Any

from agent_core.errors import DeploymentError
from agent_core.images import refused_registry


def check_definition(params: dict[str, Any], registries: list[str], source: str) -> None:
    """Every container image of a task definition's ``params`` is from ``registries`` (if set).

    :param source: names the definition in the message ("task definition etl:3").
    :raise DeploymentError: one is not, naming the container, its registry and the list.
    """
    if not registries:
        return
    for container in params.get("containerDefinitions") or []:
        image = str(container.get("image") or "")
        registry = refused_registry(image, registries) if image else None
        if registry is not None:
            raise DeploymentError(
                f"image {image!r} (container {container.get('name', '?')!r} of {source}) is from registry "
                f"{registry!r}, which this agent does not allow (allowed_registries: {', '.join(registries)}); "
                "nothing was registered or started"
            )
