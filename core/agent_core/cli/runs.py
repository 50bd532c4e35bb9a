"""``agent runs``: create, list, show, follow logs of and cancel flow runs."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import pendulum
import typer

from agent_core.cli.context import state
from agent_core.cli.output import (
    Format,
    OutputOption,
    console,
    emit_json,
    human_time,
    local_time,
    styled_state,
    table,
)
from agent_core.cli.parsing import duration, json_or_file, moment, parameters
from agent_core.client import APIClient
from agent_core.states import State

app = typer.Typer(help="Create, inspect and cancel flow runs.", no_args_is_help=True)


def _run_line(run: dict[str, Any]) -> str:
    return f"{run['id']} ({run['flow']['name']}) {styled_state(run['state']['type'])}"


@app.command("create")
def create(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(help="flow name or id")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="parameter K=V (V may be JSON)")] = None,
    at: Annotated[str | None, typer.Option("--at", help="start time, ISO 8601 (local time unless an offset)")] = None,
    in_: Annotated[str | None, typer.Option("--in", help="start after a delay: 30s, 5m, 1h30m")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="label (default: the flow's)")] = None,
    run_config: Annotated[str | None, typer.Option("--run-config", help="run config JSON or @FILE")] = None,
    retries: Annotated[int, typer.Option(min=0, max=100, help="retries after a failure")] = 0,
    retry_delay: Annotated[str, typer.Option(help="delay before each retry: 10s, 1m")] = "0s",
    idempotency_key: Annotated[str | None, typer.Option(help="the same key twice returns the first run")] = None,
    name: Annotated[str | None, typer.Option(help="run name (default: FLOW-ID)")] = None,
    output: OutputOption = Format.table,
) -> None:
    """Create a flow run, scheduled now unless --at or --in says otherwise."""
    if at and in_:
        raise typer.BadParameter("give --at or --in, not both")
    start = moment(at) if at else pendulum.now("UTC").add(seconds=duration(in_, "--in")) if in_ else None
    client = state(ctx).client
    # The flow may be named by id or name; the API resolves either through flow_name.
    run = client.create_flow_run(
        flow_name=flow,
        parameters=parameters(param),
        labels=label,
        run_config=json_or_file(run_config, "--run-config"),
        scheduled_start_time=start.in_timezone("UTC").isoformat() if start else None,
        idempotency_key=idempotency_key,
        max_retries=retries,
        retry_delay_seconds=duration(retry_delay, "--retry-delay"),
        name=name,
    )
    if output == Format.json:
        emit_json(run)
        return
    console.print(
        f"Created run {run['id']} of {run['flow']['name']}, scheduled {human_time(run['scheduled_start_time'])}"
    )


@app.command("list")
def list_runs(
    ctx: typer.Context,
    state_: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="only runs in this state (repeatable)")
    ] = None,
    flow: Annotated[str | None, typer.Option(help="only runs of this flow")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    output: OutputOption = Format.table,
) -> None:
    """List flow runs, newest first."""
    try:
        states = [State.parse(s).value for s in state_ or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--state") from None
    runs = state(ctx).client.list_flow_runs(states=states, flow=flow, limit=limit)
    table(
        runs,
        [
            ("ID", lambda r: r["id"]),
            ("FLOW", lambda r: r["flow"]["name"]),
            ("STATE", lambda r: styled_state(r["state"]["type"])),
            ("ATTEMPT", lambda r: str(r["attempt"])),
            ("SCHEDULED", lambda r: human_time(r["scheduled_start_time"])),
            ("UPDATED", lambda r: human_time(r["state"]["timestamp"])),
            ("MESSAGE", lambda r: (r["state"]["message"] or "").splitlines()[0][:60] if r["state"]["message"] else ""),
        ],
        output,
        empty="no flow runs",
    )


@app.command("show")
def show(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="run id")], output: OutputOption = Format.table
) -> None:
    """A run's details and its state history."""
    client = state(ctx).client
    run = client.get_flow_run(run_id)
    history = client.flow_run_states(run_id)
    if output == Format.json:
        emit_json({**run, "states": history})
        return
    rows = [
        ("id", run["id"]),
        ("flow", f"{run['flow']['name']} v{run['flow']['version']}"),
        ("command", run["flow"]["command"]),
        ("state", f"{styled_state(run['state']['type'])} {run['state']['message']}"),
        ("attempt", f"{run['attempt']} of {run['max_retries'] + 1}"),
        ("scheduled", local_time(run["scheduled_start_time"])),
        ("started", local_time(run["start_time"])),
        ("ended", local_time(run["end_time"])),
        ("parameters", str(run["parameters"])),
        ("labels", ", ".join(run["labels"]) or "-"),
        ("run config", str(run["run_config"]) if run["run_config"] else "-"),
        ("agent", run["agent_id"] or "-"),
        ("deployment", (run["deployment"] or {}).get("info") or "-"),
    ]
    for key, value in rows:
        console.print(f"[bold]{key:>11}[/]  {value}")
    console.print("\n[bold]history[/]")
    for entry in history:
        padding = " " * max(1, 12 - len(entry["type"]))
        console.print(f"  {local_time(entry['timestamp'])}  {styled_state(entry['type'])}{padding}{entry['message']}")


def _print_logs(items: list[dict[str, Any]], output: Format) -> None:
    for item in items:
        if output == Format.json:
            print(json.dumps(item), flush=True)  # one object per line, for scripts that stream
        else:
            level = item["level"]
            style = {"ERROR": "red", "WARNING": "yellow", "CRITICAL": "red bold"}.get(level, "dim")
            console.print(
                f"[dim]{local_time(item['timestamp'])}[/] [{style}]{level:<7}[/] {item['message']}", markup=True
            )


def follow_logs(client: APIClient, run_id: str, output: Format, poll: float = 0.5) -> str:
    """Print logs until the run reaches a final state and no more lines come; returns the state."""
    cursor = None
    while True:
        items, cursor = client.read_logs(run_id, cursor)
        _print_logs(items, output)
        if items:
            continue
        run_state = client.get_flow_run(run_id)["state"]["type"]
        if State(run_state).is_final:
            items, cursor = client.read_logs(run_id, cursor)
            _print_logs(items, output)
            if not items:
                return run_state
        time.sleep(poll)


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="run id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    output: OutputOption = Format.table,
) -> None:
    """A run's logs, in order."""
    client = state(ctx).client
    if follow:
        final = follow_logs(client, run_id, output)
        if output == Format.table:
            console.print(f"run ended {styled_state(final)}")
        return
    cursor = None
    while True:
        items, cursor = client.read_logs(run_id, cursor)
        if not items:
            break
        _print_logs(items, output)


@app.command("cancel")
def cancel(
    ctx: typer.Context, run_id: Annotated[str, typer.Argument(help="run id")], output: OutputOption = Format.table
) -> None:
    """Cancel a run: at once if it has not started, else its agent stops it."""
    run = state(ctx).client.cancel_flow_run(run_id, "Cancelled from the command line")
    if output == Format.json:
        emit_json(run)
        return
    console.print(f"{_run_line(run)}")
