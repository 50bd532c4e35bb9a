"""Run ids by unique prefix: ``agent runs show 7bad186a`` for ``7bad186a-4d69-42ac-9522-9fa2edd35de0``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from agent_core.client import APIClient

FULL_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
MIN_PREFIX = 4
SHOWN = 5  # candidates named in an "ambiguous" error


def resolve_run_id(client: APIClient, given: str) -> str:
    """The full id of the one run whose id starts with ``given``; a clear error for none or several.

    A full id is used as it is (no listing). A prefix is matched against the tenant's runs,
    newest first, reading pages until a second match proves it ambiguous.
    """
    text = given.strip().lower()
    if FULL_ID.match(text):
        return text
    if len(text) < MIN_PREFIX or not re.fullmatch(r"[0-9a-f-]+", text):
        raise typer.BadParameter(
            f"{given!r} is not a run id or an id prefix of at least {MIN_PREFIX} hex characters "
            "(agent runs list shows them)",
            param_hint="RUN_ID",
        )
    matches: list[str] = []
    for run in client.iter_flow_runs():
        if run["id"].startswith(text):
            matches.append(run["id"])
            if len(matches) > SHOWN:
                break
    if not matches:
        raise typer.BadParameter(f"no run has an id starting with {given!r} (agent runs list)", param_hint="RUN_ID")
    if len(matches) > 1:
        shown = ", ".join(m[:12] for m in matches[:SHOWN])
        more = " and more" if len(matches) > SHOWN else ""
        raise typer.BadParameter(
            f"{given!r} matches several runs ({shown}{more}); give more characters", param_hint="RUN_ID"
        )
    return matches[0]
