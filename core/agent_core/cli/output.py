"""How commands print: rich tables and human times for people, ``--output json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Annotated, Any

import pendulum
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Piped output is not cut at 80 columns; a terminal gets its own width.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

STATE_STYLES = {
    "Scheduled": "cyan",
    "Submitted": "blue",
    "Running": "yellow",
    "Success": "green",
    "Failed": "red",
    "Cancelling": "magenta",
    "Cancelled": "dim",
}


class Format(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Format, typer.Option("--output", "-o", help="table for people, json for scripts")]


def print_error(message: str) -> None:
    """One line on stderr; the message is printed as is (brackets in it are not markup)."""
    err_console.print(Text.assemble(("Error: ", "red"), message))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def human_time(value: str | None) -> str:
    if not value:
        return "-"
    moment = pendulum.parse(value)
    assert isinstance(moment, pendulum.DateTime)
    return moment.diff_for_humans()


def local_time(value: str | None) -> str:
    if not value:
        return "-"
    moment = pendulum.parse(value)
    assert isinstance(moment, pendulum.DateTime)
    return moment.in_timezone(pendulum.local_timezone()).format("YYYY-MM-DD HH:mm:ss zz")


def styled_state(state: str) -> str:
    style = STATE_STYLES.get(state, "")
    return f"[{style}]{state}[/]" if style else state


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], str]]],
    output: Format,
    *,
    empty: str = "nothing to show",
) -> None:
    if output == Format.json:
        emit_json(list(rows))
        return
    if not rows:
        console.print(f"[dim]{empty}[/]")
        return
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, _ in columns:
        t.add_column(name, overflow="fold")
    for row in rows:
        t.add_row(*(fn(row) for _, fn in columns))
    console.print(t)
