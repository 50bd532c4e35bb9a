"""``agent agents``: the agents that registered with the API."""

import typer

from agent_core.cli.context import state
from agent_core.cli.options import TYPER_OPTIONS
from agent_core.cli.output import Format, OutputOption, human_time, table

app = typer.Typer(help="List agents.", no_args_is_help=True, **TYPER_OPTIONS)


@app.command("list")
def list_agents(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """Agents with their backend, labels and when they were last seen."""
    table(
        state(ctx).client.list_agents(),
        [
            ("NAME", lambda a: a["name"]),
            ("BACKEND", lambda a: a["backend"]),
            ("LABELS", lambda a: ",".join(a["labels"]) or "-"),
            ("LAST SEEN", lambda a: human_time(a["last_heartbeat"])),
            ("ID", lambda a: a["id"]),
        ],
        output,
        empty="no agents have registered yet",
    )
