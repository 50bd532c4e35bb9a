"""``agent start``, ``agent plugins list`` and ``agent doctor``: the agent-side commands.

The engine, the client and the API server are imported inside the commands (see ``main.py``).
"""

from typing import TYPE_CHECKING, Annotated

import typer

from agent_core.cli.context import state
from agent_core.cli.options import TYPER_OPTIONS, setting_help
from agent_core.cli.output import Format, OutputOption, emit_json, say, table
from agent_core.cli.parsing import key_values

if TYPE_CHECKING:
    import pluggy

    from agent_core.engine.settings import AgentSettings
    from agent_core.models import CheckResult
    from agent_core.serving import RunningServer

SET_HELP = "backend setting K=V, or an extension's plugins.NAME.K=V (repeatable)"


def setting_path(backend: str, setting: str) -> str:
    """Where ``--set SETTING=...`` goes: ``plugins.NAME.KEY`` is an extension's, anything else the backend's."""
    if setting.startswith("plugins."):
        return setting
    return f"backends.{backend}.{setting}"


plugins_app = typer.Typer(help="Discovered backends and extensions.", no_args_is_help=True, **TYPER_OPTIONS)


def start(
    ctx: typer.Context,
    backend: Annotated[str, typer.Option("--backend", "-b", help="deployment backend (agent plugins list)")],
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="label (repeatable)")] = None,
    env: Annotated[list[str] | None, typer.Option("--env", "-e", help="K=V for every run (repeatable)")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="agent name [default: hostname]")] = None,
    max_polls: Annotated[int | None, typer.Option("--max-polls", min=1, help="stop after this many polls")] = None,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="stop once no run is scheduled, in flight or running")
    ] = False,
    agent_address: Annotated[
        str | None, typer.Option("--agent-address", help="serve /api/health and /api/poke, e.g. http://127.0.0.1:8080")
    ] = None,
    agent_config_id: Annotated[str | None, typer.Option("--agent-config-id", help="server-side agent config")] = None,
    api: Annotated[str | None, typer.Option("--api", help="API URL [default: embedded SQLite API]")] = None,
    key: Annotated[str | None, typer.Option("--key", help="runner API key")] = None,
    drain_timeout: Annotated[
        float | None,
        typer.Option(min=0, help=setting_help("seconds to finish deploys on SIGTERM", "agent.drain_timeout")),
    ] = None,
    disable_plugin: Annotated[list[str] | None, typer.Option("--disable-plugin", help="extension to skip")] = None,
    import_path: Annotated[
        list[str] | None, typer.Option("--import-path", help="local backend: prepend to PYTHONPATH (repeatable)")
    ] = None,
    show_flow_logs: Annotated[
        bool, typer.Option("--show-flow-logs", help="local backend: echo run output to this log")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug logging: --log-level debug")] = False,
) -> None:
    """Start an agent: poll for flow runs and deploy them with BACKEND."""
    from agent_core.client import APIClient
    from agent_core.engine.agent import Agent
    from agent_core.engine.settings import AgentSettings
    from agent_core.plugins import get_plugin_manager

    cli = state(ctx)
    config = cli.config
    if verbose:
        config.set("agent.log_level", "DEBUG", "flag")
    cli.start_logging()
    for dotted, value in (("api.url", api), ("api.key", key)):
        if value is not None:
            config.set(dotted, value, "flag")
    if label:
        config.set("agent.labels", label, "flag")
    settings_overrides = dict(key_values(set_, "--set"))
    if import_path:
        settings_overrides["import_paths"] = list(import_path)  # type: ignore[assignment]
    if show_flow_logs:
        settings_overrides["show_flow_logs"] = True  # type: ignore[assignment]
    for setting, value in settings_overrides.items():
        config.set(setting_path(backend, setting), value, "flag")
    disabled = [*config.section("agent")["disable_plugins"], *(disable_plugin or [])]
    pm = get_plugin_manager(backend, disabled=disabled)

    embedded: RunningServer | None = None
    api_settings = config.section("api")
    url = api_settings["url"]
    if not url:
        # Workloads need a URL they can reach, so the embedded API is served on loopback.
        import dataclasses
        import logging

        from agent_core.server.serve import open_store, start_in_thread
        from agent_core.server.settings import ServerSettings

        server_settings = ServerSettings.from_config(config.section("server"))
        if "server.access_log" not in config.sources:
            # The agent is the embedded API's only client: a line per poll is noise in its log.
            server_settings = dataclasses.replace(server_settings, access_log=False)
        embedded = start_in_thread(open_store(config.db_url), settings=server_settings)
        url = embedded.url
        logging.getLogger("agent").info("Embedded API on %s (database %s)", url, config.db_url)
    client = APIClient(url, api_settings["key"], timeout=api_settings["timeout"], retries=api_settings["retries"])
    settings = AgentSettings.from_config(
        config,
        backend,
        name=name,
        env={**config.section("agent")["env"], **key_values(env, "--env")},
        max_polls=max_polls,
        until_idle=until_idle,
        agent_address=agent_address,
        agent_config_id=agent_config_id,
        drain_timeout=drain_timeout,
        api_url=client.url,
    )
    agent = Agent(settings, client, pm, masker=cli.masker)
    try:
        agent.start()
    finally:
        client.close()
        if embedded is not None:
            embedded.stop()


@plugins_app.command("list")
def plugins_list(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """Every discovered backend and extension: distribution, version and hooks."""
    from agent_core.plugins import describe_installed

    disabled = state(ctx).config.section("agent")["disable_plugins"]
    infos = describe_installed(disabled)
    if output == Format.json:
        emit_json([info.__dict__ for info in infos])
        return
    table(
        [info.__dict__ for info in infos],
        [
            ("NAME", lambda i: i["name"]),
            ("KIND", lambda i: i["kind"]),
            ("DISTRIBUTION", lambda i: i["distribution"]),
            ("VERSION", lambda i: i["version"]),
            ("STATUS", lambda i: i["status"]),
            ("HOOKS", lambda i: ", ".join(i["hooks"])),
        ],
        output,
        empty="no plugins installed: pip install agent-plugin-local",
    )


def doctor(
    ctx: typer.Context,
    backend: Annotated[str, typer.Option("--backend", "-b", help="backend to check")],
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    output: OutputOption = Format.table,
) -> None:
    """Check the API connection and the backend's preflight checks; exit 1 if any fails."""
    from agent_core.engine.agent import Agent
    from agent_core.engine.settings import AgentSettings
    from agent_core.errors import AuthError, ConfigError, PluginError, UnknownBackend
    from agent_core.models import CheckResult
    from agent_core.plugins import get_plugin_manager

    cli = state(ctx)
    config = cli.config
    for setting, value in key_values(set_, "--set").items():
        config.set(setting_path(backend, setting), value, "flag")
    results: list[CheckResult] = []
    try:
        hello = cli.client.hello()
        results.append(CheckResult("API reachable", True, f"{cli.client.url} ({hello['name']} {hello['version']})"))
        info = cli.client.auth_info()
        role_ok = info["role"] in ("runner", "admin")
        results.append(
            CheckResult(
                "key may run agents",
                role_ok,
                f"role {info['role']}, tenant {info['tenant']}",
                fix="" if role_ok else "give the agent a runner key: an admin runs 'agent keys create --role runner'",
            )
        )
    except AuthError as exc:
        results.append(
            CheckResult("API key accepted", False, str(exc), fix="check --key / AGENT__API__KEY / [api] key")
        )
    except Exception as exc:
        where = cli.config.section("api")["url"]
        fix = (
            f"start the API server there (agent server start) or correct --api / AGENT__API__URL ({where})"
            if where
            else "check [server] db / --db and that its folder is writable"
        )
        results.append(CheckResult("API reachable", False, str(exc), fix=fix))
    try:
        pm = get_plugin_manager(backend, disabled=config.section("agent")["disable_plugins"])
        settings = AgentSettings.from_config(config, backend)
        results.append(_extension_settings_check(pm, settings))
        if not results[-1].ok:
            settings.plugin_settings = {}  # reported above; the backend's own checks still run
        agent = Agent(settings, cli.client, pm)
        agent.load_backend_contract()
        results.append(CheckResult(f"backend {backend}", True, "settings valid"))
        for result in agent.preflight():
            if not result.ok and not result.fix:
                result.fix = f"see the {backend} backend's page in the docs (docs/backends/{backend}.md)"
            results.append(result)
    except UnknownBackend as exc:
        results.append(CheckResult(f"backend {backend}", False, str(exc), fix=f"pip install agent-plugin-{backend}"))
    except PluginError as exc:
        results.append(CheckResult("plugins", False, str(exc), fix="agent plugins list shows each plugin's problems"))
    except ConfigError as exc:
        results.append(
            CheckResult(
                f"backend {backend}",
                False,
                str(exc),
                fix=f"correct it in [backends.{backend}], AGENT__BACKENDS__{backend.upper()}__KEY or --set KEY=VALUE",
            )
        )
    except Exception as exc:
        results.append(CheckResult(f"backend {backend}", False, str(exc), fix="see the message; agent plugins list"))
    if output == Format.json:
        emit_json([r.__dict__ for r in results])
    else:
        for r in results:
            say(("ok   ", "green") if r.ok else ("FAIL ", "red"), f"{r.name}: {r.detail}")
            if not r.ok and r.fix:
                say("     ", ("fix: ", "bold"), r.fix)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


def _extension_settings_check(pm: "pluggy.PluginManager", settings: "AgentSettings") -> "CheckResult":
    from agent_core.errors import ConfigError
    from agent_core.models import CheckResult
    from agent_core.plugin_settings import declared_schemas, load_plugin_settings

    try:
        load_plugin_settings(pm, settings.plugin_settings)
    except ConfigError as exc:
        return CheckResult(
            "extension settings",
            False,
            str(exc),
            fix="correct them in [plugins.NAME], AGENT__PLUGINS__NAME__KEY or --set plugins.NAME.KEY=VALUE",
        )
    names = ", ".join(sorted(declared_schemas(pm))) or "no extension takes settings"
    return CheckResult("extension settings", True, f"valid ({names})")


def register(app: typer.Typer) -> None:
    from agent_core.cli import plugins_new

    app.command("start")(start)
    app.command("doctor")(doctor)
    plugins_new.register(plugins_app)
    app.add_typer(plugins_app, name="plugins")
