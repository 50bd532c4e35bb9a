"""``resolve_run_config``: a run's run config in the type the agent's backend accepts."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, fields

from agent_core.errors import RunConfigMismatch
from agent_core.runconfig import resolve_run_config


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
