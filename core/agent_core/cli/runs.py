"""``agent runs``: create, list, show, follow logs of, cancel and prune flow runs."""

import json
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent_core.cli.context import state
from agent_core.cli.ids import resolve_run_id
from agent_core.cli.options import TYPER_OPTIONS
from agent_core.cli.output import (
    LEVEL_STYLES,
    Format,
    OutputOption,
    Piece,
    emit_json,
    human_time,
    local_time,
    print_note,
    say,
    short_id,
    state_piece,
    table,
)
from agent_core.cli.parsing import duration, json_or_file, moment, parameters
from agent_core.cli.runconfig_check import check_run_config
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.client import APIClient

app = typer.Typer(help="Create, inspect, cancel and prune flow runs.", no_args_is_help=True, **TYPER_OPTIONS)

RunId = Annotated[str, typer.Argument(metavar="RUN_ID", help="run id, or a unique prefix of it (as runs list shows)")]
FINAL_STATES = tuple(s.value for s in State if s.is_final)


def _run_pieces(run: dict[str, Any]) -> list[Piece]:
    return [f"{run['id']} ({run['flow']['name']}) ", state_piece(run["state"]["type"])]


def _parse_states(given: list[str] | None) -> list[str]:
    try:
        return [State.parse(s).value for s in given or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--state") from None


@app.command("create")
def create(
    ctx: typer.Context,
    flow: Annotated[str, typer.Argument(metavar="FLOW", help="flow name or id")],
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
    import pendulum

    if at and in_:
        raise typer.BadParameter("give --at or --in, not both")
    start = moment(at) if at else pendulum.now("UTC").add(seconds=duration(in_, "--in")) if in_ else None
    client = state(ctx).client
    config = json_or_file(run_config, "--run-config")
    check_run_config(config, "--run-config", client)
    # The flow may be named by id or name; the API resolves either through flow_name.
    run = client.create_flow_run(
        flow_name=flow,
        parameters=parameters(param),
        labels=label,
        run_config=config,
        scheduled_start_time=start.in_timezone("UTC").isoformat() if start else None,
        idempotency_key=idempotency_key,
        max_retries=retries,
        retry_delay_seconds=duration(retry_delay, "--retry-delay"),
        name=name,
    )
    if output == Format.json:
        emit_json(run)
        return
    say(f"Created run {run['id']} of {run['flow']['name']}, scheduled {human_time(run['scheduled_start_time'])}")


def _first_line(message: str | None, width: int = 60) -> str:
    return (message or "").splitlines()[0][:width] if message else ""


@app.command("list")
def list_runs(
    ctx: typer.Context,
    state_: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="only runs in this state (repeatable)")
    ] = None,
    flow: Annotated[str | None, typer.Option(help="only runs of this flow")] = None,
    label: Annotated[str | None, typer.Option("--label", "-l", help="only runs with this label")] = None,
    limit: Annotated[int, typer.Option(min=1, help="at most this many, newest first")] = 50,
    output: OutputOption = Format.table,
) -> None:
    """List flow runs, newest first (ids shown short: any unique prefix names a run)."""
    states = _parse_states(state_)
    runs = state(ctx).client.list_flow_runs(states=states, flow=flow, label=label, limit=limit)
    table(
        runs,
        [
            ("ID", lambda r: short_id(r["id"])),
            ("FLOW", lambda r: r["flow"]["name"]),
            ("STATE", lambda r: state_piece(r["state"]["type"])),
            ("ATTEMPT", lambda r: str(r["attempt"])),
            ("SCHEDULED", lambda r: human_time(r["scheduled_start_time"])),
            ("UPDATED", lambda r: human_time(r["state"]["timestamp"])),
            ("MESSAGE", lambda r: _first_line(r["state"]["message"])),
        ],
        output,
        empty="no flow runs",
    )


@app.command("show")
def show(ctx: typer.Context, run_id: RunId, output: OutputOption = Format.table) -> None:
    """A run's details and its state history."""
    client = state(ctx).client
    run_id = resolve_run_id(client, run_id)
    run = client.get_flow_run(run_id)
    history = client.flow_run_states(run_id)
    if output == Format.json:
        emit_json({**run, "states": history})
        return
    rows: list[tuple[str, list[Piece]]] = [
        ("id", [run["id"]]),
        ("flow", [f"{run['flow']['name']} v{run['flow']['version']}"]),
        ("command", [run["flow"]["command"]]),
        ("state", [state_piece(run["state"]["type"]), f" {run['state']['message']}"]),
        ("attempt", [f"{run['attempt']} of {run['max_retries'] + 1}"]),
        ("scheduled", [local_time(run["scheduled_start_time"])]),
        ("started", [local_time(run["start_time"])]),
        ("ended", [local_time(run["end_time"])]),
        ("parameters", [json.dumps(run["parameters"])]),
        ("labels", [", ".join(run["labels"]) or "-"]),
        ("run config", [json.dumps(run["run_config"]) if run["run_config"] else "-"]),
        ("agent", [run["agent_id"] or "-"]),
        ("deployment", [(run["deployment"] or {}).get("info") or "-"]),
    ]
    for key, value in rows:
        say((f"{key:>11}", "bold"), "  ", *value)
    say()
    say(("history", "bold"))
    for entry in history:
        padding = " " * max(1, 12 - len(entry["type"]))
        say(f"  {local_time(entry['timestamp'])}  ", state_piece(entry["type"]), padding, entry["message"] or "")


def _print_logs(items: list[dict[str, Any]], output: Format) -> None:
    for item in items:
        if output == Format.json:
            print(json.dumps(item), flush=True)  # one object per line, for scripts that stream
        else:
            level = item["level"]
            # The message is workload output: printed as it is, never as markup.
            say(
                (local_time(item["timestamp"]), "dim"),
                " ",
                (f"{level:<7}", LEVEL_STYLES.get(level, "dim")),
                " ",
                item["message"],
            )


def follow_logs(client: "APIClient", run_id: str, output: Format, poll: float = 0.5) -> str:
    """Print logs until the run reaches a final state and no more lines come; returns the state.

    While the run has not started (Scheduled, Submitted) a note on stderr says it is waiting,
    once, so that an empty screen is not mistaken for a hang.
    """
    cursor = None
    waiting_said = False
    while True:
        items, cursor = client.read_logs(run_id, cursor)
        _print_logs(items, output)
        if items:
            continue
        run = client.get_flow_run(run_id)
        run_state = State(run["state"]["type"])
        if run_state.is_final:
            items, cursor = client.read_logs(run_id, cursor)
            _print_logs(items, output)
            if not items:
                return run_state.value
        elif run_state in (State.SCHEDULED, State.SUBMITTED) and not waiting_said:
            when = human_time(run["scheduled_start_time"])
            print_note(f"Waiting for run {run_id[:8]} to start ({run_state.value}, scheduled {when})...")
            waiting_said = True
        time.sleep(poll)


@app.command("logs")
def logs(
    ctx: typer.Context,
    run_id: RunId,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the run ends")] = False,
    output: OutputOption = Format.table,
) -> None:
    """A run's logs, in order."""
    client = state(ctx).client
    run_id = resolve_run_id(client, run_id)
    if follow:
        final = follow_logs(client, run_id, output)
        if output == Format.table:
            say("run ended ", state_piece(final))
        return
    cursor = None
    while True:
        items, cursor = client.read_logs(run_id, cursor)
        if not items:
            break
        _print_logs(items, output)


@app.command("cancel")
def cancel(ctx: typer.Context, run_id: RunId, output: OutputOption = Format.table) -> None:
    """Cancel a run: at once if it has not started, else its agent stops it."""
    client = state(ctx).client
    run = client.cancel_flow_run(resolve_run_id(client, run_id), "Cancelled from the command line")
    if output == Format.json:
        emit_json(run)
        return
    say(*_run_pieces(run))


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: Annotated[
        str, typer.Option("--older-than", help="delete finished runs that ended longer ago than this: 30d, 12h")
    ],
    state_: Annotated[
        list[str] | None,
        typer.Option("--state", "-s", help="only runs in this final state (repeatable) [default: all final states]"),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="count what would be deleted, delete nothing")] = False,
    output: OutputOption = Format.table,
) -> None:
    """Delete finished runs, with their logs and state history (admin key). Unfinished runs are kept."""
    seconds = duration(older_than, "--older-than")
    states = _parse_states(state_)
    unfinished = [s for s in states if s not in FINAL_STATES]
    if unfinished:
        raise typer.BadParameter(
            f"{', '.join(unfinished)} is not a final state; only {', '.join(FINAL_STATES)} runs can be pruned",
            param_hint="--state",
        )
    result = state(ctx).client.prune_flow_runs(older_than_seconds=seconds, states=states or None, dry_run=dry_run)
    if output == Format.json:
        emit_json(result)
        return
    verb = "Would delete" if dry_run else "Deleted"
    say(
        f"{verb} {result['runs']} run(s) and {result['logs']} log line(s) of runs "
        f"({', '.join(result['states'])}) that ended before {local_time(result['before'])}"
    )
