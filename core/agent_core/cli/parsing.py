"""Parsing of command-line values, each failure a one-line ``typer.BadParameter``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    import pendulum

NUMBER = r"(\d+(?:\.\d+)?)"
DURATION = re.compile(rf"^\s*(?:{NUMBER}\s*d)?\s*(?:{NUMBER}\s*h)?\s*(?:{NUMBER}\s*m)?\s*(?:{NUMBER}\s*s?)?\s*$")


def key_values(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{what} must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def parameters(items: list[str] | None) -> dict[str, Any]:
    """``--param K=V``: V is parsed as JSON when it is JSON (numbers, true, lists), else kept as text."""
    out: dict[str, Any] = {}
    for key, value in key_values(items, "--param").items():
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def json_or_file(value: str | None, what: str) -> dict[str, Any] | None:
    if value is None:
        return None
    text = value
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise typer.BadParameter(f"{what}: cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{what} is not valid JSON ({exc}); pass JSON or @FILE") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f'{what} must be a JSON object like {{"type": "local"}}')
    return data


def duration(value: str, option: str | None = None) -> float:
    """``90``, ``90s``, ``5m``, ``1h30m``, ``30d`` -> seconds."""
    match = DURATION.match(value)
    if not value.strip() or not match or not any(match.groups()):
        raise typer.BadParameter(f"not a duration: {value!r}; use e.g. 30s, 5m, 1h30m, 30d", param_hint=option)
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def moment(value: str) -> pendulum.DateTime:
    import pendulum

    try:
        parsed = pendulum.parse(value, tz=pendulum.local_timezone())
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        parsed = None
    if not isinstance(parsed, pendulum.DateTime):
        raise typer.BadParameter(f"not a date-time: {value!r}; use ISO 8601 like 2026-01-31T09:30")
    return parsed
