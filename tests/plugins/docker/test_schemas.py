"""The ``docker`` run config and ``[backends.docker]`` settings: defaults, validation, strings from --set."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from agent_core.config import is_secret
from agent_core.errors import RunConfigMismatch
from agent_core.runconfig import resolve_run_config
from agent_plugin_docker.schemas import DockerRunConfigSchema, DockerSettingsSchema, volume_problem


def load_run_config(data: dict[str, Any]) -> dict[str, Any]:
    return DockerRunConfigSchema().load(data)


def test_an_empty_run_config_defers_to_the_settings() -> None:
    config = load_run_config({})
    assert config["image"] is None
    assert config["networks"] is None
    assert config["pull_policy"] is None
    assert config["auto_remove"] is None
    assert config["env"] == {} and config["volumes"] == [] and config["create_options"] == {}


def test_a_universal_run_config_converts_with_its_env_and_labels() -> None:
    schema = DockerRunConfigSchema()
    config = resolve_run_config({"type": "universal", "env": {"A": "1"}, "labels": ["gpu"]}, "docker", schema)
    assert config["env"] == {"A": "1"}
    assert config["labels"] == ["gpu"]


def test_a_full_run_config_loads() -> None:
    config = load_run_config(
        {
            "image": "python:3.12",
            "command": ["python", "-c", "print(1)"],
            "entrypoint": "/bin/sh -c",
            "env": {"A": "1"},
            "container_labels": {"team": "data"},
            "networks": ["front", "back"],
            "volumes": ["/data:/data:ro", "cache:/cache", "/scratch:/scratch"],
            "mem_limit": "512m",
            "cpus": 0.5,
            "pull_policy": "always",
            "auto_remove": False,
            "create_options": {"user": "1000", "working_dir": "/work", "init": True},
        }
    )
    assert config["command"] == ["python", "-c", "print(1)"]
    assert config["mem_limit"] == "512m"
    assert config["create_options"]["init"] is True


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"imagee": "x"}, "imagee", "Unknown field"),
        ({"networks": ["a"], "network_mode": "host"}, "network_mode", "exclusive"),
        ({"pull_policy": "sometimes"}, "pull_policy", "Must be one of"),
        ({"mem_limit": "lots"}, "mem_limit", "not a size"),
        ({"cpus": 0}, "cpus", "greater than"),
        ({"command": 3}, "command", "string or a list"),
        ({"volumes": ["relative/path"]}, "volumes", "a bare path"),
        ({"volumes": ["/host:relative"]}, "volumes", "must be absolute"),
        ({"env": {"A": 1}}, "env", "Not a valid string"),
        ({"create_options": {"name": "mine"}}, "create_options", "the backend sets it"),
        ({"create_options": {"environment": {}}}, "create_options", "'env' field"),
        ({"create_options": {"auto_remove": True}}, "create_options", "'auto_remove' field"),
    ],
)
def test_invalid_run_configs_name_the_field(data: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        load_run_config(data)
    messages = caught.value.normalized_messages()
    assert field in messages, messages
    assert words in str(messages[field])


def test_the_engine_reports_an_invalid_run_config_as_a_mismatch_naming_the_problem() -> None:
    with pytest.raises(RunConfigMismatch, match="invalid volume spec 'a:b:c:d'"):
        resolve_run_config({"type": "docker", "volumes": ["a:b:c:d"]}, "docker", DockerRunConfigSchema())


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("/host:/container", None),
        ("named:/container:ro", None),
        ("/host:/container:ro,z", None),
        ("/srv/data", "a bare path mounts an empty anonymous volume"),
        ("data", "write /data:/data"),
        ("", "use SOURCE:TARGET"),
        ("a:b:c:d", "use SOURCE:TARGET"),
        (":/container", "source"),
        ("/host:relative", "must be absolute"),
        ("/host:/container:rx", "unknown mode 'rx'"),
    ],
)
def test_volume_specs(spec: str, problem: str | None) -> None:
    found = volume_problem(spec)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_bare_volume_path_is_refused_with_how_to_bind_the_folder_or_name_a_volume() -> None:
    problem = volume_problem("/srv/data")

    assert problem is not None
    assert "write /srv/data:/srv/data to bind the host folder /srv/data" in problem
    assert "NAME:/srv/data to mount the named volume NAME" in problem


def test_a_bare_volume_path_in_the_settings_is_refused_too() -> None:
    with pytest.raises(ValidationError) as caught:
        DockerSettingsSchema().load({"volumes": "/srv/data"})
    assert "write /srv/data:/srv/data" in str(caught.value.normalized_messages()["volumes"])


def test_a_null_in_the_run_configs_env_loads_so_that_it_removes_the_variable() -> None:
    assert load_run_config({"env": {"HTTP_PROXY": None, "A": "1"}})["env"] == {"HTTP_PROXY": None, "A": "1"}


def test_the_core_keys_are_accepted_and_left_to_core() -> None:
    config = resolve_run_config(
        {"type": "docker", "image": "x", "ship_output": False, "timeout_seconds": 60}, "docker", DockerRunConfigSchema()
    )
    assert config["image"] == "x"
    assert "ship_output" not in config and "timeout_seconds" not in config


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ({"allowed_registries": "registry.example.com", "image": "python:3.12"}, "not from one of the allowed"),
        ({"allowed_registries": "*"}, "invalid registry '*'"),
        ({"allowed_registries": "https://"}, "invalid registry"),
    ],
)
def test_an_allow_list_the_default_image_breaks_or_a_bad_entry_is_a_start_up_error(
    settings: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        DockerSettingsSchema().load(settings)
    assert words in str(caught.value.normalized_messages())


def test_an_allow_list_loads_from_a_comma_separated_setting() -> None:
    settings = DockerSettingsSchema().load(
        {"allowed_registries": "registry.example.com:5000, docker.io/library", "image": "python:3.12"}
    )
    assert settings["allowed_registries"] == ["registry.example.com:5000", "docker.io/library"]


def test_settings_defaults() -> None:
    settings = DockerSettingsSchema().load({})
    assert settings["base_url"] == ""
    assert settings["api_version"] == "auto"
    assert settings["pull_policy"] == "if-not-present"
    assert settings["allowed_registries"] == []
    assert settings["auto_remove"] is True
    assert settings["networks"] == [] and settings["volumes"] == [] and settings["container_labels"] == {}


def test_settings_given_as_strings_by_the_environment_or_set() -> None:
    settings = DockerSettingsSchema().load(
        {
            "networks": "front, back",
            "volumes": '["/data:/data:ro"]',
            "container_labels": "team=data,env=prod",
            "auto_remove": "false",
            "timeout": "5",
        }
    )
    assert settings["networks"] == ["front", "back"]
    assert settings["volumes"] == ["/data:/data:ro"]
    assert settings["container_labels"] == {"team": "data", "env": "prod"}
    assert settings["auto_remove"] is False
    assert settings["timeout"] == 5.0


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"daemon": "unix:///x"}, "daemon"),
        ({"registry_username": "me"}, "registry_username"),
        ({"volumes": "/a:b"}, "volumes"),
        ({"container_labels": "novalue"}, "container_labels"),
        ({"timeout": "0"}, "timeout"),
    ],
)
def test_invalid_settings_name_the_key(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DockerSettingsSchema().load(data)
    assert field in caught.value.normalized_messages()


def test_the_registry_password_is_masked_by_config_show() -> None:
    assert is_secret("registry_password")
