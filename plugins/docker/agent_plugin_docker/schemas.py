"""The ``docker`` run-config type and the docker backend's settings (``[backends.docker]``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker.errors
import docker.utils
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from agent_core.runconfig import RunConfigSchema
from agent_core.settings_fields import StringDict, StringList, check_default_image, validate_registries
from agent_plugin_docker.images import PULL_POLICIES

# Mount options the engine accepts after the second colon of a `-v` style spec.
VOLUME_MODES = frozenset(
    {
        "ro", "rw", "z", "Z", "consistent", "cached", "delegated", "nocopy",
        "shared", "rshared", "slave", "rslave", "private", "rprivate",
    }
)  # fmt: skip

# Options the backend sets itself from the run config's own fields (or must control, like
# removal, so that the exit code is never lost): they may not come through create_options.
RESERVED_CREATE_OPTIONS = {
    "image": "image",
    "command": "command",
    "entrypoint": "entrypoint",
    "name": None,
    "labels": "container_labels",
    "environment": "env",
    "network": "networks",
    "network_mode": "network_mode",
    "networking_config": "networks",
    "volumes": "volumes",
    "mem_limit": "mem_limit",
    "nano_cpus": "cpus",
    "auto_remove": "auto_remove",
    "remove": "auto_remove",
    "detach": None,
    "stdin_open": None,
    "tty": None,
}


def volume_problem(spec: str) -> str | None:
    """Why ``spec`` (``SOURCE:TARGET[:MODE]``) is not a volume the backend mounts, or None."""
    parts = spec.split(":")
    if len(parts) > 3 or not spec:
        return f"invalid volume spec {spec!r}: use SOURCE:TARGET[:MODE]"
    if len(parts) == 1:
        # The engine would mount an empty anonymous volume there, not the host folder.
        path = spec if spec.startswith("/") else f"/{spec}"
        return (
            f"invalid volume spec {spec!r}: a bare path mounts an empty anonymous volume, not a host folder; "
            f"write {path}:{path} to bind the host folder {path}, or NAME:{path} to mount the named volume NAME"
        )
    target = parts[1]
    if not parts[0]:
        return f"invalid volume spec {spec!r}: the source (host path or volume name) is empty"
    if not target.startswith("/"):
        return f"invalid volume spec {spec!r}: the container path {target!r} must be absolute"
    if len(parts) == 3:
        bad = [mode for mode in parts[2].split(",") if mode not in VOLUME_MODES]
        if bad:
            return f"invalid volume spec {spec!r}: unknown mode {', '.join(map(repr, bad))}"
    return None


def _validate_volumes(specs: list[str]) -> None:
    problems = [problem for spec in specs if (problem := volume_problem(spec))]
    if problems:
        raise ValidationError(problems)


def _validate_mem_limit(value: str | int) -> None:
    try:
        docker.utils.parse_bytes(value)
    except docker.errors.DockerException:
        raise ValidationError(f"not a size: {value!r}; use bytes or a unit, e.g. 512m or 2g") from None


class Command(fields.Field):
    """A command line (split like a shell would) or an argv list."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return list(value)
        raise ValidationError("must be a string or a list of strings")


class Size(fields.Field):
    """Bytes as an integer or a string with a unit (``512m``), validated like the engine does."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("must be a number of bytes or a string like 512m")
        _validate_mem_limit(value)
        return value


class DockerRunConfigSchema(RunConfigSchema):
    """``{"type": "docker", "image": ..., "command": ..., "env": {...}, ...}``.

    Unset fields fall back to the agent's ``[backends.docker]`` settings.
    """

    class Meta:
        unknown = RAISE

    image = fields.String(load_default=None, allow_none=True, metadata={"description": "default: settings image"})
    command = Command(load_default=None, allow_none=True, metadata={"description": "replaces the flow's command"})
    entrypoint = Command(load_default=None, allow_none=True, metadata={"description": "replaces the image's"})
    container_labels = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    networks = fields.List(
        fields.String(), load_default=None, allow_none=True, metadata={"description": "replaces settings networks"}
    )
    network_mode = fields.String(load_default=None, allow_none=True, metadata={"description": "host, none, ..."})
    volumes = fields.List(
        fields.String(),
        load_default=list,
        validate=_validate_volumes,
        metadata={"description": "SOURCE:TARGET[:MODE], added to the settings volumes"},
    )
    mem_limit = Size(load_default=None, allow_none=True, metadata={"description": "e.g. 512m"})
    cpus = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, min_inclusive=False))
    pull_policy = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(PULL_POLICIES),
        metadata={"description": "no more pulls than the agent's pull_policy allows"},
    )
    auto_remove = fields.Boolean(load_default=None, allow_none=True)
    create_options = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={"description": "passed to docker's containers.create as keyword arguments"},
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("network_mode") and data.get("networks"):
            raise ValidationError("network_mode and networks are exclusive: set one of them", "network_mode")
        problems = []
        for key in data.get("create_options") or {}:
            if key in RESERVED_CREATE_OPTIONS:
                field = RESERVED_CREATE_OPTIONS[key]
                instead = f"use the run config's {field!r} field" if field else "the backend sets it"
                problems.append(f"{key!r} is not allowed here: {instead}")
        if problems:
            raise ValidationError(problems, "create_options")


class DockerSettingsSchema(Schema):
    """``[backends.docker]``: the daemon, defaults for run configs, and registry credentials."""

    class Meta:
        unknown = RAISE

    base_url = fields.String(
        load_default="", metadata={"description": "daemon URL; default DOCKER_HOST or unix:///var/run/docker.sock"}
    )
    api_version = fields.String(load_default="auto", metadata={"description": "'auto' negotiates with the daemon"})
    timeout = fields.Float(
        load_default=60.0, validate=validate.Range(min=0, min_inclusive=False), metadata={"description": "seconds"}
    )
    image = fields.String(load_default=None, allow_none=True, metadata={"description": "for runs that name none"})
    networks = StringList(load_default=list, metadata={"description": "default networks (first at creation)"})
    network_mode = fields.String(load_default=None, allow_none=True, metadata={"description": "default network mode"})
    volumes = StringList(load_default=list, validate=_validate_volumes, metadata={"description": "added to every run"})
    container_labels = StringDict(load_default=dict, metadata={"description": "added to every container"})
    pull_policy = fields.String(
        load_default="if-not-present",
        validate=validate.OneOf(PULL_POLICIES),
        metadata={"description": "the default, and the most pulls a run config may ask for"},
    )
    allowed_registries = StringList(
        load_default=list,
        validate=validate_registries,
        metadata={"description": "registries (host[:port][/path]) images may come from; empty: any"},
    )
    registry = fields.String(load_default="", metadata={"description": "registry the credentials are for; '' = any"})
    registry_username = fields.String(load_default="")
    registry_password = fields.String(load_default="")
    auto_remove = fields.Boolean(
        load_default=True, metadata={"description": "remove containers once their run is final"}
    )
    state_dir = fields.String(
        load_default=None, allow_none=True, metadata={"description": "default $AGENT_HOME/docker-runs"}
    )
    show_flow_logs = fields.Boolean(
        load_default=False, metadata={"description": "echo container output to the agent's log"}
    )

    @validates_schema
    def _check(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("network_mode") and data.get("networks"):
            raise ValidationError("network_mode and networks are exclusive: set one of them", "network_mode")
        if bool(data.get("registry_username")) != bool(data.get("registry_password")):
            raise ValidationError("set both registry_username and registry_password, or neither", "registry_username")
        check_default_image(data.get("image"), data.get("allowed_registries") or [])
