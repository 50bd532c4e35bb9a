"""``agent server``: serve the orchestration API (and the dashboard at ``/``) over HTTP."""

import signal
import threading
from typing import Annotated, Any

import typer

from agent_core.cli.context import CLIState, state
from agent_core.cli.options import TYPER_OPTIONS, setting_help
from agent_core.cli.output import say

app = typer.Typer(help="Serve the orchestration API and the dashboard.", no_args_is_help=True, **TYPER_OPTIONS)


def serve(cli: CLIState, what: str) -> None:
    """Serve the API app (dashboard included) with the ``[server]`` settings until SIGINT or SIGTERM."""
    from agent_core.server.serve import check_auth_policy, make_server, open_store, serve_until

    settings = cli.config.section("server")
    cli.start_logging()
    store = open_store(cli.config.db_url)
    check_auth_policy(settings["host"], settings["auth"], store)
    server = make_server(store, settings["host"], settings["port"], auth=settings["auth"], threads=settings["threads"])
    url = f"http://{settings['host']}:{server.effective_port}"
    db_shown = store.engine.url.render_as_string(hide_password=True)
    say(f"Serving {what} on {url} (database {db_shown}, auth {'on' if settings['auth'] else 'off'})")
    say(f"Dashboard: {url}/")

    stopping = threading.Event()

    def stop(signum: int, _frame: Any) -> None:
        say("Stopping the API server")
        stopping.set()
        try:
            server.pull_trigger()
        except OSError:
            pass  # already closing

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serve_until(server, stopping)
    store.engine.dispose()


@app.command("start")
def start(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help=setting_help("address to bind", "server.host"))] = None,
    port: Annotated[
        int | None, typer.Option(min=0, max=65535, help=setting_help("port (0: any free one)", "server.port"))
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            help=setting_help(
                "database URL: sqlite:///PATH or postgresql://USER@HOST/DB",
                "server.db",
                "sqlite:///$AGENT_HOME/agent.db",
            )
        ),
    ] = None,
    auth: Annotated[
        bool | None,
        typer.Option("--auth/--no-auth", help=setting_help("require API keys (required off loopback)", "server.auth")),
    ] = None,
) -> None:
    """Serve the API, and the dashboard at /, until SIGINT or SIGTERM."""
    cli = state(ctx)
    for key, value in (("server.host", host), ("server.port", port), ("server.db", db), ("server.auth", auth)):
        if value is not None:
            cli.config.set(key, value, "flag")
    serve(cli, "the agent API")
