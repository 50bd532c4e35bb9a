"""``agent server``: serve the orchestration API over HTTP."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from agent_core.cli.context import state
from agent_core.cli.output import console
from agent_core.server.logs import configure_logging
from agent_core.server.serve import check_auth_policy, make_server, open_store, serve_until
from agent_core.server.settings import ServerSettings
from agent_core.server.storage.db import describe_url

app = typer.Typer(help="Serve the orchestration API.", no_args_is_help=True)


@app.command("start")
def start(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="address to bind [config server.host, default 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(min=0, max=65535, help="port [config server.port, default 4200]")] = None,
    db: Annotated[
        str | None, typer.Option(help="database URL: sqlite:///PATH or postgresql://USER@HOST/DB [default: SQLite]")
    ] = None,
    auth: Annotated[
        bool | None, typer.Option("--auth/--no-auth", help="require API keys (required off loopback)")
    ] = None,
) -> None:
    """Serve the API until SIGINT or SIGTERM."""
    cli = state(ctx)
    for key, value in (("server.host", host), ("server.port", port), ("server.db", db), ("server.auth", auth)):
        if value is not None:
            cli.config.set(key, value, "flag")
    settings = cli.config.section("server")
    server_settings = ServerSettings.from_config(settings)
    configure_logging()
    store = open_store(cli.config.db_url)
    check_auth_policy(settings["host"], settings["auth"], store)
    server, service = make_server(
        store,
        settings["host"],
        settings["port"],
        auth=settings["auth"],
        threads=settings["threads"],
        settings=server_settings,
    )
    url = f"http://{settings['host']}:{server.effective_port}"
    db_shown = describe_url(store.engine.url)
    console.print(f"Serving the agent API on {url} (database {db_shown}, auth {'on' if settings['auth'] else 'off'})")

    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        console.print("Stopping the API server")
        stopping.set()
        service.wakeups.close()  # waiting long polls answer now rather than hold the shutdown
        try:
            server.pull_trigger()
        except OSError:
            pass  # already closing

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    service.start()
    try:
        serve_until(server, stopping)
    finally:
        service.stop()
        store.engine.dispose()
