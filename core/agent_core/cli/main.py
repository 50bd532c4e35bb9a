"""The root ``agent`` command and its error handling: a clear line, never a traceback."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from agent_core import __version__
from agent_core.cli import agent_cmds, agents, config_cmd, flows, keys, runs, server
from agent_core.cli.context import CLIState
from agent_core.cli.output import err_console, print_error
from agent_core.errors import AgentError, AuthError

app = typer.Typer(
    name="agent",
    help="Poll an orchestration API for flow runs and deploy them through backend plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(server.app, name="server")
app.add_typer(flows.app, name="flows")
app.add_typer(runs.app, name="runs")
app.add_typer(agents.app, name="agents")
app.add_typer(keys.app, name="keys")
app.add_typer(config_cmd.app, name="config")


def _version(value: bool) -> None:
    if value:
        print(f"agent {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    # No envvar= here: AGENT__API__URL and the like are read by the config layer, which
    # records them as coming from the environment (see `agent config show`).
    api: Annotated[
        str | None, typer.Option("--api", help="API URL [env AGENT__API__URL; unset: the embedded SQLite API]")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="API key [env AGENT__API__KEY]", show_default=False)] = None,
    db: Annotated[str | None, typer.Option("--db", help="database of the embedded API [env AGENT__SERVER__DB]")] = None,
    config: Annotated[str | None, typer.Option("--config", envvar="AGENT_CONFIG", help="config file")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    if verbose:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = CLIState(config_file=config, overrides={"api.url": api, "api.key": key, "server.db": db})


agent_cmds.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agent`` console script."""
    try:
        result = app(args=argv, standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("Aborted.")
        return 130
    except typer.TyperException as exc:
        # Usage errors and bad parameters: click's own one-line message with the usage.
        show = getattr(exc, "show", None)
        if show:
            show()
        else:
            print_error(str(exc))
        return getattr(exc, "exit_code", 2)
    except AuthError as exc:
        print_error(f"{exc} (check --key / AGENT__API__KEY)")
        return 1
    except AgentError as exc:
        print_error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    # Without standalone mode click hands back typer.Exit's code as the return value.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
