"""``agent config``: the effective configuration and where each value came from."""

import typer

from agent_core.cli.context import state
from agent_core.cli.options import TYPER_OPTIONS
from agent_core.cli.output import Format, OutputOption, emit_json, say
from agent_core.config import PLUGIN_SECTIONS
from agent_core.masking import mask_url

app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True, **TYPER_OPTIONS)


@app.command("show")
def show(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """Print the effective configuration, secrets masked, with the source of each set value.

    A secret shows as ``***`` (nothing of it: not its first characters, not its length), a URL
    with its password masked; a secret that is not set shows as ``''``.
    """
    config = state(ctx).config
    values = config.effective(masked=True)
    if output == Format.json:
        emit_json(values)
        return
    say((f"config file: {config.file or 'none'}", "dim"))
    database = "(remote API)" if config.section("api")["url"] else mask_url(config.db_url)
    say((f"database: {database}", "dim"))
    for section, settings in values.items():
        if section in PLUGIN_SECTIONS:
            for plugin, plugin_settings in settings.items():
                say()
                say((f"[{section}.{plugin}]", "bold"))
                # Masked already by effective(masked=True), at any depth.
                for key, shown in plugin_settings.items():
                    source = config.sources.get(f"{section}.{plugin}.{key}", "default")
                    say(f"{key} = {shown!r}  ", (f"# {source}", "dim"))
            continue
        say()
        say((f"[{section}]", "bold"))
        for key, value in settings.items():
            source = config.sources.get(f"{section}.{key}", "default")
            say(f"{key} = {value!r}  ", (f"# {source}", "dim"))
