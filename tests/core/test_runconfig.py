"""``resolve_run_config``: a run's run config in the type the agent's backend accepts."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields

from agent_core.errors import RunConfigMismatch
from agent_core.runconfig import CoreRunOptions, RunConfigSchema, core_options, resolve_run_config


class XRunConfig(Schema):
    image = fields.String(load_default="default-image")
    env = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    labels = fields.List(fields.String(), load_default=list)


UNIVERSAL = {"type": "universal", "env": {"A": "1"}, "labels": ["l"], "image": "ignored"}

RESOLVED = [
    # (run config, schema, resolved)
    (None, None, {"type": "x"}),
    ({"type": "x", "image": "i"}, None, {"type": "x", "image": "i"}),
    (UNIVERSAL, None, {"type": "x", "env": {"A": "1"}, "labels": ["l"]}),
    ({"type": "universal"}, None, {"type": "x"}),
    (None, XRunConfig(), {"image": "default-image", "env": {}, "labels": []}),
    ({"type": "x", "image": "i"}, XRunConfig(), {"image": "i", "env": {}, "labels": []}),
    (UNIVERSAL, XRunConfig(), {"image": "default-image", "env": {"A": "1"}, "labels": ["l"]}),
    (
        {"type": "universal", "env": {"B": "2"}},
        XRunConfig(),
        {"image": "default-image", "env": {"B": "2"}, "labels": []},
    ),
]


@pytest.mark.parametrize(("run_config", "schema", "resolved"), RESOLVED)
def test_resolve_run_config(run_config: dict[str, Any] | None, schema: Schema | None, resolved: Any) -> None:
    assert resolve_run_config(run_config, "x", schema) == resolved


MISMATCHES = [
    # (run config, schema, words the message must contain)
    ({"type": "docker", "image": "i"}, None, ["'docker'", "'x'", "'universal'"]),
    ({"type": "docker"}, XRunConfig(), ["'docker'", "'x'"]),
    ({"type": "local", "command": "c"}, XRunConfig(), ["'local'", "'x'"]),
    ({"image": "untyped"}, None, ["None", "'x'"]),
    ({"type": "x", "image": 5}, XRunConfig(), ["invalid 'x' run config", "image"]),
    ({"type": "x", "imgae": "typo"}, XRunConfig(), ["imgae"]),
    ({"type": "universal", "env": {"A": 1}}, XRunConfig(), ["env"]),
]


@pytest.mark.parametrize(("run_config", "schema", "words"), MISMATCHES)
def test_resolve_run_config_mismatch(run_config: dict[str, Any], schema: Schema | None, words: list[str]) -> None:
    with pytest.raises(RunConfigMismatch) as info:
        resolve_run_config(run_config, "x", schema)

    for word in words:
        assert word in str(info.value)


def test_resolve_run_config_leaves_its_input_alone() -> None:
    run_config = dict(UNIVERSAL)

    resolve_run_config(run_config, "x", XRunConfig())

    assert run_config == UNIVERSAL


# --- the core keys every type accepts ---------------------------------------------------------

CORE = {"timeout_seconds": 90, "ship_output": False}


@pytest.mark.parametrize(
    ("run_config", "resolved"),
    [
        ({"type": "x", "image": "i", **CORE}, {"image": "i", "env": {}, "labels": []}),
        ({"type": "universal", "env": {"A": "1"}, **CORE}, {"image": "default-image", "env": {"A": "1"}, "labels": []}),
        (
            {"type": "x", "timeout_seconds": None, "ship_output": None},
            {"image": "default-image", "env": {}, "labels": []},
        ),
    ],
    ids=["backend-type", "universal", "nulls"],
)
def test_the_core_keys_never_reach_the_backends_schema(run_config: dict[str, Any], resolved: Any) -> None:
    assert resolve_run_config(run_config, "x", XRunConfig()) == resolved


@pytest.mark.parametrize(
    ("run_config", "options"),
    [
        (None, CoreRunOptions(None, True)),
        ({"type": "x"}, CoreRunOptions(None, True)),
        ({"type": "x", **CORE}, CoreRunOptions(90.0, False)),
        ({"type": "docker", "timeout_seconds": 0.5, "ship_output": True}, CoreRunOptions(0.5, True)),
    ],
)
def test_core_options_reads_the_core_keys_of_any_type(run_config: dict[str, Any] | None, options: Any) -> None:
    assert core_options(run_config) == options


@pytest.mark.parametrize(
    ("run_config", "words"),
    [
        ({"timeout_seconds": 0}, ["timeout_seconds", "positive", "0"]),
        ({"timeout_seconds": -5}, ["timeout_seconds", "-5"]),
        ({"timeout_seconds": "60"}, ["timeout_seconds", "'60'"]),
        ({"timeout_seconds": True}, ["timeout_seconds", "True"]),
        ({"timeout_seconds": float("inf")}, ["timeout_seconds", "inf"]),
        ({"ship_output": "false"}, ["ship_output", "true or false", "'false'"]),
        ({"ship_output": 0}, ["ship_output", "0"]),
    ],
)
def test_an_invalid_core_key_is_a_mismatch_naming_the_key(run_config: dict[str, Any], words: list[str]) -> None:
    for resolve in (
        lambda: core_options({"type": "x", **run_config}),
        lambda: resolve_run_config({"type": "x", **run_config}, "x", XRunConfig()),
    ):
        with pytest.raises(RunConfigMismatch) as info:
            resolve()
        for word in words:
            assert word in str(info.value)


class EchoRunConfigSchema(RunConfigSchema):
    """A backend's run-config schema built on core's base, as a third party would write it."""

    greeting = fields.String(load_default="hello")


def test_a_backend_schema_on_the_base_takes_a_universal_run_config_with_its_env_and_labels() -> None:
    run_config = {"type": "universal", "env": {"A": "1", "GONE": None}, "labels": ["gpu"]}

    assert resolve_run_config(run_config, "echo", EchoRunConfigSchema()) == {
        "env": {"A": "1", "GONE": None},
        "labels": ["gpu"],
        "greeting": "hello",
    }


def test_a_backend_schema_on_the_base_refuses_an_unknown_field() -> None:
    with pytest.raises(RunConfigMismatch) as info:
        resolve_run_config({"type": "echo", "greting": "hi"}, "echo", EchoRunConfigSchema())
    assert "greting" in str(info.value)
