"""The ``[backends.ecs]`` settings and the ``ecs`` run config: names, defaults, precedence, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from marshmallow import ValidationError

from agent_core.config import load_config
from agent_core.errors import RunConfigMismatch
from agent_core.runconfig import resolve_run_config
from agent_plugin_ecs.schemas import EcsRunConfig, EcsRunConfigSchema, EcsSettings, EcsSettingsSchema


def load_settings(raw: dict) -> EcsSettings:
    return EcsSettingsSchema().load(raw)


def problems(schema, raw: dict) -> dict:
    with pytest.raises(ValidationError) as caught:
        schema.load(raw)
    return caught.value.normalized_messages()


def test_settings_have_the_issues_names_and_defaults() -> None:
    settings = load_settings({})
    assert settings == EcsSettings()
    assert (settings.container_name, settings.log_stream_prefix, settings.register_rate) == ("flow", "agent", 1.0)
    # cpu and memory default to 1024 and 2048 where the template sets none (see test_taskdef).
    assert settings.cpu is None and settings.memory is None
    for name in (
        "region", "profile", "endpoint_url", "cluster", "launch_type", "capacity_provider_strategy", "subnets",
        "security_groups", "assign_public_ip", "task_role_arn", "execution_role_arn", "cpu", "memory",
        "container_name", "task_definition_template", "run_task_template", "log_group", "log_stream_prefix",
        "tags", "register_rate",
    ):  # fmt: skip
        assert hasattr(settings, name), name


def test_settings_from_strings_as_the_environment_and_set_give_them() -> None:
    settings = load_settings(
        {
            "subnets": "subnet-a, subnet-b",
            "security_groups": '["sg-1"]',
            "assign_public_ip": "true",
            "tags": "team=data,env=prod",
            "cpu": "512",
            "memory": 4096,
            "capacity_provider_strategy": "FARGATE_SPOT:3,FARGATE:1:1",
            "register_rate": "0.5",
        }
    )
    assert settings.subnets == ["subnet-a", "subnet-b"]
    assert settings.security_groups == ["sg-1"]
    assert settings.assign_public_ip is True
    assert settings.tags == {"team": "data", "env": "prod"}
    assert (settings.cpu, settings.memory) == ("512", "4096")
    assert settings.capacity_provider_strategy == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 3},
        {"capacityProvider": "FARGATE", "weight": 1, "base": 1},
    ]


@pytest.mark.parametrize(
    ("raw", "field", "text"),
    [
        ({"launch_type": "LAMBDA"}, "launch_type", "Must be one of"),
        ({"capacity_provider_strategy": "FARGATE:x"}, "capacity_provider_strategy", "NAME[:WEIGHT[:BASE]]"),
        ({"register_rate": 0}, "register_rate", "greater than 0"),
        ({"cpu": True}, "cpu", "must be a number"),
        ({"clusetr": "x"}, "clusetr", "Unknown field"),
        ({"task_definition_path": "td.yaml"}, "task_definition_path", "use 'task_definition_template'"),
        ({"run_task_kwargs_path": "rt.yaml"}, "run_task_kwargs_path", "use 'run_task_template'"),
        ({"aws_access_key_id": "AKIA..."}, "aws_access_key_id", "boto3's own chain"),
    ],
)
def test_a_bad_setting_is_named_with_the_fix(raw: dict, field: str, text: str) -> None:
    found = problems(EcsSettingsSchema(), raw)
    assert field in found
    assert text in str(found[field])


def test_launch_type_and_capacity_providers_the_later_source_replaces_the_other(tmp_path: Path) -> None:
    config_file = tmp_path / "agent.toml"
    config_file.write_text('[backends.ecs]\nlaunch_type = "EC2"\ncapacity_provider_strategy = "FARGATE_SPOT"\n')

    def effective(environ: dict[str, str], flags: dict[str, str]) -> EcsSettings:
        config = load_config(config_file, environ=environ, overrides=flags)
        return load_settings(config.backend_settings("ecs"))

    # Within the file the later line wins.
    from_file = effective({}, {})
    assert (from_file.launch_type, from_file.capacity_provider_strategy) == (
        None,
        [{"capacityProvider": "FARGATE_SPOT"}],
    )
    # The environment sets launch_type again: it is the later source now.
    from_env = effective({"AGENT__BACKENDS__ECS__LAUNCH_TYPE": "FARGATE"}, {})
    assert (from_env.launch_type, from_env.capacity_provider_strategy) == ("FARGATE", None)
    # --set beats the environment.
    from_flag = effective(
        {"AGENT__BACKENDS__ECS__LAUNCH_TYPE": "FARGATE"}, {"backends.ecs.capacity_provider_strategy": "FARGATE:1"}
    )
    assert from_flag.launch_type is None
    assert from_flag.capacity_provider_strategy == [{"capacityProvider": "FARGATE", "weight": 1}]


def resolve(run_config: dict) -> EcsRunConfig:
    return resolve_run_config(run_config, "ecs", EcsRunConfigSchema())


def test_a_universal_run_config_converts_to_ecs() -> None:
    loaded = resolve({"type": "universal", "env": {"A": "1"}, "labels": ["x"]})
    assert loaded == EcsRunConfig(env={"A": "1"}, labels=["x"])


def test_a_null_in_the_env_loads_so_that_it_removes_the_variable() -> None:
    assert resolve({"type": "ecs", "env": {"HTTP_PROXY": None, "A": ""}}).env == {"HTTP_PROXY": None, "A": ""}
    assert resolve({"type": "universal", "env": {"HTTP_PROXY": None}}).env == {"HTTP_PROXY": None}


def test_the_core_keys_are_accepted_and_left_to_core() -> None:
    assert resolve({"type": "ecs", "ship_output": False, "timeout_seconds": 60}) == EcsRunConfig()


def test_a_run_config_carries_every_field_of_the_issue() -> None:
    loaded = resolve(
        {
            "type": "ecs",
            "image": "img:1",
            "cpu": 2048,
            "memory": "4 GB",
            "env": {"A": "1", "GONE": None},
            "task_role_arn": "arn:task",
            "execution_role_arn": "arn:exec",
            "capacity_provider_strategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
            "task_definition": {"family": "mine", "containerDefinitions": [{"name": "flow", "image": "x"}]},
            "run_task_kwargs": {"overrides": {"ephemeralStorage": {"sizeInGiB": 30}}, "platformVersion": "1.4.0"},
            "labels": ["gpu"],
        }
    )
    assert (loaded.cpu, loaded.memory, loaded.env) == ("2048", "4 GB", {"A": "1", "GONE": None})
    assert loaded.run_task_kwargs["platformVersion"] == "1.4.0"


@pytest.mark.parametrize(
    ("run_config", "text"),
    [
        ({"imag": "x"}, "imag: unknown name; did you mean 'image'?"),
        ({"task_definition": {"containerDefinition": []}}, 'Unknown parameter in input: "containerDefinition"'),
        (
            {"task_definition": {"containerDefinitions": [{"name": "flow", "memory": "lots"}]}},
            "containerDefinitions[0].memory",
        ),
        ({"run_task_kwargs": {"launchtype": "EC2"}}, 'Unknown parameter in input: "launchtype"'),
        ({"run_task_kwargs": {"overrides": {"cpu": 1024}}}, "overrides.cpu"),
        ({"run_task_kwargs": {"taskDefinition": "x:1"}}, "use the run config's 'task_definition_arn' field"),
        ({"run_task_kwargs": {"clientToken": "t"}}, "'clientToken' is not allowed here: the backend sets it"),
        ({"task_definition_arn": "x:1", "task_definition_path": "td.json"}, "exclude each other"),
        ({"launch_type": "EC2", "capacity_provider_strategy": [{"capacityProvider": "A"}]}, "exclude each other"),
    ],
)
def test_a_bad_run_config_fails_naming_the_field_before_any_aws_call(run_config: dict, text: str) -> None:
    with pytest.raises(RunConfigMismatch) as caught:
        resolve({"type": "ecs", **run_config})
    assert text in str(caught.value)
    assert str(caught.value).startswith("invalid 'ecs' run config: ")
