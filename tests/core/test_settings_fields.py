"""Backend settings given as text (environment, ``--set``): lists, mappings and the registry allow-list."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import Schema, ValidationError

from agent_core.settings_fields import StringDict, StringList, check_default_image, validate_registries


class Settings(Schema):
    items = StringList(load_default=list)
    pairs = StringDict(load_default=dict)
    allowed_registries = StringList(load_default=list, validate=validate_registries)


@pytest.mark.parametrize(
    ("given", "loaded"),
    [
        ("a, b,,c ", ["a", "b", "c"]),
        ('["a", "b,c"]', ["a", "b,c"]),
        (["x"], ["x"]),
        ("", []),
    ],
)
def test_a_list_setting_reads_comma_separated_text_a_json_list_or_a_list(given: Any, loaded: list[str]) -> None:
    assert Settings().load({"items": given})["items"] == loaded


@pytest.mark.parametrize(
    ("given", "loaded"),
    [
        ("team=etl, tier = gold", {"team": "etl", "tier": "gold"}),
        ('{"a": "1,2"}', {"a": "1,2"}),
        ({"k": "v"}, {"k": "v"}),
    ],
)
def test_a_mapping_setting_reads_pairs_a_json_object_or_a_mapping(given: Any, loaded: dict[str, str]) -> None:
    assert Settings().load({"pairs": given})["pairs"] == loaded


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"items": "[not json"}, "not a JSON list of strings"),
        ({"items": [1, 2]}, "must be a list of strings"),
        ({"pairs": "team"}, "use k=v,k2=v2 or a JSON object"),
        ({"pairs": "{bad"}, "not a JSON object of strings"),
        ({"pairs": {"k": 1}}, "must be a mapping of strings to strings"),
        ({"allowed_registries": "registry.example.com, not a registry"}, "invalid registry 'not a registry'"),
    ],
)
def test_a_bad_value_is_refused_naming_what_to_write(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings().load(data)
    assert message in str(info.value)


def test_a_default_image_must_be_one_the_allow_list_allows() -> None:
    check_default_image("registry.example.com/etl:1", ["registry.example.com"])
    check_default_image("evil.example/etl:1", [])  # no list: any image
    with pytest.raises(ValidationError) as info:
        check_default_image("evil.example/etl:1", ["registry.example.com"])
    assert info.value.field_name == "image"
    assert str(info.value) == (
        "the default image 'evil.example/etl:1' is not from one of the allowed_registries (registry.example.com)"
    )
    with pytest.raises(ValidationError) as info:
        check_default_image("Not An Image", ["registry.example.com"])
    assert "invalid image name 'Not An Image'" in str(info.value)
