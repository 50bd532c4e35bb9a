"""``agent plugins new NAME [--extension]``: write a new plugin distribution to start from."""

from pathlib import Path
from typing import Annotated

import typer

from agent_core.cli.output import say


def new(
    name: Annotated[str, typer.Argument(help="the plugin's name: agent start --backend NAME, [plugins.NAME]")],
    extension: Annotated[
        bool, typer.Option("--extension", help="an extension (agent.plugins) instead of a backend")
    ] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="where to write it [default: ./agent-plugin-NAME]")
    ] = None,
) -> None:
    """Write a plugin distribution (pyproject, hooks, tests, README) that installs and passes its tests."""
    from agent_core.errors import ConfigError
    from agent_core.scaffold import Plugin, ScaffoldError, write_plugin

    plugin = Plugin(name, extension)
    target = directory or Path(plugin.distribution)
    try:
        written = write_plugin(name, target, extension=extension)
    except ScaffoldError as exc:
        raise ConfigError(str(exc)) from None
    kind = "extension" if extension else "backend"
    say(f"Wrote the {kind} {name!r} ({plugin.distribution}) in {target}:")
    for path in written:
        say(f"  {path.relative_to(target)}")
    say()
    say(f"Next: pip install -e '{target}[test]', then agent plugins list, and pytest {target}")


def register(app: typer.Typer) -> None:
    app.command("new")(new)
