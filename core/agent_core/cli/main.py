"""The root ``agent`` command and its error handling: a clear line, never a traceback.

Cheap by construction: this module and the command modules import only typer and the
standard library at the top; the client, the engine, the API server and SQLAlchemy are imported
by the commands that use them, so ``agent --help``, ``agent --version`` and every command given
``--api URL`` import neither the server nor SQLAlchemy (``tests/cli/test_cheap_paths.py``).
"""

import sys
from typing import Annotated

import typer

from agent_core import __version__
from agent_core.cli import agent_cmds, agents, config_cmd, flows, keys, runs, server, ui, version
from agent_core.cli.argv import hoist_global_options
from agent_core.cli.context import CLIState
from agent_core.cli.options import TYPER_OPTIONS, setting_help
from agent_core.cli.output import print_error
from agent_core.errors import AgentError, AuthError

app = typer.Typer(
    name="agent",
    help=(
        "Poll an orchestration API for flow runs and deploy them through backend plugins. "
        "The global options below may also be given after the command (agent runs list --api URL)."
    ),
    no_args_is_help=True,
    **TYPER_OPTIONS,
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
        str | None,
        typer.Option("--api", help=setting_help("API URL", "api.url", "the embedded SQLite API")),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help=setting_help("API key", "api.key", "none"), show_default=False)
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help=setting_help("database of the embedded API", "server.db", "sqlite:///$AGENT_HOME/agent.db")
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="config file [env AGENT_CONFIG; default: ./agent.toml, $AGENT_HOME/config.toml, "
            "/etc/agent/config.toml, the first that exists]",
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help=setting_help("debug, info, warning or error", "agent.log_level")),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format", help=setting_help("text for people, json for one object per line", "agent.log_format")
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging: --log-level debug")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    overrides = {
        "api.url": api,
        "api.key": key,
        "server.db": db,
        "agent.log_level": "DEBUG" if verbose else log_level,
        "agent.log_format": log_format,
    }
    ctx.obj = CLIState(config_file=config, overrides=overrides)


agent_cmds.register(app)
version.register(app)
ui.register(app)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agent`` console script."""
    given = sys.argv[1:] if argv is None else list(argv)
    if given[:1] == ["--version"]:
        # The cheapest path: no command tree to build for it.
        print(f"agent {__version__}")
        return 0
    command = typer.main.get_command(app)
    args = hoist_global_options(command, given)  # type: ignore[arg-type]
    try:
        result = command.main(args=args, prog_name="agent", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
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
    except Exception as exc:  # a bug somewhere below: still one line, secrets masked
        import logging

        # The traceback (masked by the log handler) is there with -v; the line says so.
        logging.getLogger("agent").debug("unexpected error", exc_info=True)
        print_error(f"unexpected {type(exc).__name__}: {exc} (a bug: run with -v for the traceback)")
        return 1
    # Without standalone mode click hands back typer.Exit's code as the return value.
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
