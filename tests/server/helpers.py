"""Small helpers shared by the table-driven API tests."""

from __future__ import annotations

from typing import Any


def fill(value: Any, ids: dict[str, str]) -> Any:
    """``value`` with every ``{name}`` placeholder (in strings, nested anywhere) replaced by ``ids[name]``."""
    if isinstance(value, str):
        for name, id_ in ids.items():
            value = value.replace(f"{{{name}}}", id_)
        return value
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    return value
