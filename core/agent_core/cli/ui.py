"""``agent ui``: the dashboard of the embedded default, served on loopback."""

from typing import Annotated

import typer

from agent_core.cli.context import state
from agent_core.cli.server import serve
from agent_core.errors import ConfigError


def ui(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(min=0, max=65535, help="port on 127.0.0.1 (0: any free one)")] = 4200,
) -> None:
    """Serve the dashboard (and the API) of the embedded database on 127.0.0.1 until Ctrl-C."""
    cli = state(ctx)
    url = cli.config.section("api")["url"]
    if url:
        raise ConfigError(
            f"the API is remote ({url}): its server serves the dashboard, open {url.rstrip('/')}/ in a browser"
        )
    # Loopback, and no keys, exactly as every other command uses the embedded API.
    cli.config.set("server.host", "127.0.0.1", "flag")
    cli.config.set("server.port", port, "flag")
    cli.config.set("server.auth", False, "flag")
    serve(cli, "the dashboard and API of the embedded database")


def register(app: typer.Typer) -> None:
    app.command("ui")(ui)
