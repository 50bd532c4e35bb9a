"""``agent version``: what is installed here and what the API runs, for bug reports and upgrades."""

import sys
from typing import Any

import typer

from agent_core import __version__
from agent_core.cli.context import state
from agent_core.cli.output import Format, OutputOption, emit_json, say


def _plugins() -> list[dict[str, str]]:
    # From the distributions' metadata: listing versions does not import the plugins.
    from agent_core.plugins import BACKENDS_GROUP, PLUGINS_GROUP, entry_points

    out = []
    for group, kind in ((BACKENDS_GROUP, "backend"), (PLUGINS_GROUP, "extension")):
        for ep in entry_points(group):
            out.append(
                {
                    "name": ep.name,
                    "kind": kind,
                    "distribution": ep.dist.name if ep.dist else "?",
                    "version": ep.dist.version if ep.dist else "?",
                }
            )
    return out


def version(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """Versions of agent-core, the plugins, Python and the API the configuration points at."""
    import platform

    cli = state(ctx)
    api: dict[str, Any]
    try:
        hello = cli.client.hello()
        api = {
            "url": "embedded" if cli.client.embedded else cli.client.url,
            "name": hello.get("name"),
            "version": hello.get("version"),
            "api_version": hello.get("api_version"),
        }
    except Exception as exc:  # an unreachable API is reported, not fatal: the local versions still help
        api = {"url": cli.config.section("api")["url"] or "embedded", "error": str(exc)}
    info = {
        "core": __version__,
        "python": f"{platform.python_version()} ({platform.python_implementation()}, {sys.executable})",
        "plugins": _plugins(),
        "api": api,
    }
    if output == Format.json:
        emit_json(info)
        return
    say(("agent-core ", "bold"), info["core"])
    say(("python     ", "bold"), info["python"])
    for plugin in info["plugins"]:
        described = f"{plugin['name']} ({plugin['kind']}): {plugin['distribution']} {plugin['version']}"
        say(("plugin     ", "bold"), described)
    if "error" in api:
        say(("api        ", "bold"), f"{api['url']}: ", ("unreachable", "red"), f" ({api['error']})")
    else:
        say(("api        ", "bold"), f"{api['url']}: {api['name']} {api['version']} (API version {api['api_version']})")


def register(app: typer.Typer) -> None:
    app.command("version")(version)
