"""Marshmallow fields and validators for backend settings (``[backends.NAME]``).

A backend's settings come from a config file (typed TOML) but also from the environment
(``AGENT__BACKENDS__NAME__KEY``) and ``--set KEY=VALUE``, where every value is text: these
fields read a list or a mapping from either. They are the same for every backend that takes
lists and mappings, so a value written for one backend means the same for another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError, fields

from agent_core.errors import InvalidImageName
from agent_core.images import allowed, registry_entry_problem


def list_from_text(value: Any, what: str = "list") -> Any:
    """A list setting as the environment or ``--set`` give it: text holding a JSON list, or
    comma-separated items (each stripped, empty ones dropped). Anything but text is returned as
    it is, for the field to check.

    :param what: what the JSON should be, for the message ("list of strings").
    :raise ValidationError: the text starts with ``[`` and is not JSON.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise ValidationError(f"not a JSON {what}") from None
    return [item.strip() for item in text.split(",") if item.strip()]


class StringList(fields.Field):
    """A list of strings; from the environment or ``--set``, a JSON list or ``a,b,c``."""

    def _deserialize(self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any) -> list[str]:
        value = list_from_text(value, "list of strings")
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ValidationError("must be a list of strings")
        return list(value)


class StringDict(fields.Field):
    """A mapping of strings; from the environment or ``--set``, a JSON object or ``k=v,k2=v2``."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, str]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValidationError("not a JSON object of strings") from None
            else:
                pairs = [item.partition("=") for item in text.split(",") if item.strip()]
                if any(not sep or not key.strip() for key, sep, _ in pairs):
                    raise ValidationError("use k=v,k2=v2 or a JSON object")
                return {key.strip(): val.strip() for key, _, val in pairs}
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ValidationError("must be a mapping of strings to strings")
        return dict(value)


def validate_registries(entries: list[str]) -> None:
    """The ``allowed_registries`` validator: every entry is ``host[:port]`` or ``host[:port]/path``.

    :raise ValidationError: one message per bad entry.
    """
    problems = [problem for entry in entries if (problem := registry_entry_problem(entry))]
    if problems:
        raise ValidationError(problems)


def check_default_image(image: str | None, registries: list[str]) -> None:
    """A backend's default ``image`` setting is one its own ``allowed_registries`` allow.

    An agent whose every run without an image would fail is a start-up error, not a run failure.

    :raise ValidationError: on the ``image`` field, it is not an image name or not allowed.
    """
    if not registries or not image:
        return
    try:
        ok = allowed(image, registries)
    except InvalidImageName as exc:
        raise ValidationError(str(exc), "image") from None
    if not ok:
        raise ValidationError(
            f"the default image {image!r} is not from one of the allowed_registries ({', '.join(registries)})", "image"
        )
