"""How commands print: rich tables and human times for people, ``--output json`` for scripts.

Nothing printed here is ever parsed as rich markup: the consoles are made with
``markup=False``, and styled text is built from ``(text, style)`` pieces. Workload output,
flow names and state messages come from elsewhere, and a line like ``copying [/mnt/data]``
must print as it is. rich is imported on first use, so commands that print nothing (``--help``)
do not pay for it.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

STATE_STYLES = {
    "Scheduled": "cyan",
    "Submitted": "blue",
    "Running": "yellow",
    "Success": "green",
    "Failed": "red",
    "Cancelling": "magenta",
    "Cancelled": "dim",
}
LEVEL_STYLES = {"ERROR": "red", "WARNING": "yellow", "CRITICAL": "red bold"}
SHORT_ID = 8

# A piece of a printed line: plain text, or text with a rich style ("bold", "red").
Piece = str | tuple[str, str]


class Format(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Format, typer.Option("--output", "-o", help="table for people, json for scripts")]


@functools.cache
def console() -> Console:
    from rich.console import Console

    # Piped output is not cut at 80 columns; a terminal gets its own width.
    return Console(highlight=False, markup=False, emoji=False, width=None if sys.stdout.isatty() else 200)


@functools.cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, markup=False, emoji=False, soft_wrap=True)


def text(*pieces: Piece) -> Text:
    from rich.text import Text

    return Text.assemble(*pieces)


def say(*pieces: Piece) -> None:
    """Print one line assembled from pieces; no piece is markup, and rich never breaks the line."""
    console().print(text(*pieces), soft_wrap=True)  # one line each, for grep; the terminal wraps it


def print_error(message: str) -> None:
    """One line on stderr; the message is printed as is (brackets in it are not markup), but
    with the password of any URL in it masked."""
    from agent_core.masking import mask_passwords

    err_console().print(text(("Error: ", "red"), mask_passwords(message)))


def print_note(message: str) -> None:
    """A line for the person on stderr (stdout stays for the data)."""
    err_console().print(text((message, "dim")))


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False) + "\n")


def human_time(value: str | None) -> str:
    if not value:
        return "-"
    import pendulum

    moment = pendulum.parse(value)
    assert isinstance(moment, pendulum.DateTime)
    return moment.diff_for_humans()


def local_time(value: str | None) -> str:
    if not value:
        return "-"
    import pendulum

    moment = pendulum.parse(value)
    assert isinstance(moment, pendulum.DateTime)
    return moment.in_timezone(pendulum.local_timezone()).format("YYYY-MM-DD HH:mm:ss zz")


def state_piece(state: str) -> Piece:
    style = STATE_STYLES.get(state)
    return (state, style) if style else state


def short_id(value: str | None) -> str:
    """The first characters of an id, as tables show it (commands accept any unique prefix)."""
    return (value or "-")[:SHORT_ID]


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], Piece]]],
    output: Format,
    *,
    empty: str = "nothing to show",
) -> None:
    if output == Format.json:
        emit_json(list(rows))
        return
    if not rows:
        say((empty, "dim"))
        return
    from rich.table import Table

    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, _ in columns:
        t.add_column(name, overflow="fold")
    for row in rows:
        t.add_row(*(text(fn(row)) for _, fn in columns))
    console().print(t)
