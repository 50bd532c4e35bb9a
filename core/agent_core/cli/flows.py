"""``agent flows``: register and list flows."""

from typing import Annotated

import typer

from agent_core.cli.context import state
from agent_core.cli.options import TYPER_OPTIONS
from agent_core.cli.output import Format, OutputOption, emit_json, human_time, say, short_id, table
from agent_core.cli.parsing import json_or_file
from agent_core.cli.runconfig_check import check_run_config

app = typer.Typer(help="Register and list flows.", no_args_is_help=True, **TYPER_OPTIONS)


@app.command("register")
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="flow name, unique per tenant")],
    command: Annotated[str, typer.Option("--command", "-c", help="the command a run executes")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="label (repeatable)")] = None,
    run_config: Annotated[
        str | None, typer.Option("--run-config", help='default run config: JSON or @FILE, e.g. {"type": "local"}')
    ] = None,
    description: Annotated[str, typer.Option(help="free text")] = "",
    output: OutputOption = Format.table,
) -> None:
    """Register a flow, or update it (a changed definition gets a new version)."""
    client = state(ctx).client
    config = json_or_file(run_config, "--run-config")
    check_run_config(config, "--run-config", client)
    flow = client.register_flow(name, command, labels=label or [], run_config=config, description=description)
    if output == Format.json:
        emit_json(flow)
        return
    verb = "Registered" if flow.pop("changed") else "Unchanged:"
    say(f"{verb} flow ", (flow["name"], "bold"), f" version {flow['version']} ({flow['id']})")


@app.command("list")
def list_flows(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """List flows."""
    flows = state(ctx).client.list_flows()
    table(
        flows,
        [
            ("NAME", lambda f: f["name"]),
            ("VERSION", lambda f: str(f["version"])),
            ("COMMAND", lambda f: f["command"]),
            ("LABELS", lambda f: ",".join(f["labels"]) or "-"),
            ("UPDATED", lambda f: human_time(f["updated"])),
            ("ID", lambda f: short_id(f["id"])),
        ],
        output,
        empty="no flows yet: agent flows register NAME --command CMD",
    )
