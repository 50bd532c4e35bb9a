"""``agent keys``: API keys per tenant, with a role each."""

from typing import Annotated

import typer

from agent_core.cli.context import state
from agent_core.cli.options import TYPER_OPTIONS
from agent_core.cli.output import Format, OutputOption, emit_json, human_time, say, table
from agent_core.errors import ConfigError

app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True, **TYPER_OPTIONS)


@app.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option("--role", help="runner (agents), user or admin")],
    name: Annotated[str, typer.Option(help="a name to recognise the key by")] = "",
    tenant: Annotated[
        str | None,
        typer.Option(help="tenant to create the key in (created if new); needs direct database access, not --api"),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print only the secret, for scripts: KEY=$(agent keys create ...)")
    ] = False,
    output: OutputOption = Format.table,
) -> None:
    """Create a key. Its secret is shown once: store it now."""
    if role not in ("runner", "user", "admin"):
        raise typer.BadParameter(f"unknown role {role!r}; use runner, user or admin", param_hint="--role")
    cli = state(ctx)
    if tenant is not None:
        if cli.config.section("api")["url"]:
            raise ConfigError("--tenant works on the database directly: drop --api / api.url and give --db")
        store = cli.client.store
        assert store is not None  # an embedded client always has one
        key, secret = store.create_key(store.ensure_tenant(tenant), role, name)
        created = {**key, "key": secret, "tenant": tenant}
    else:
        created = cli.client.create_key(role, name)
    if quiet:
        print(created["key"])
        return
    if output == Format.json:
        emit_json(created)
        return
    say(f"Created {created['role']} key {created['id']} ({created['name']}). It will not be shown again:")
    say(created["key"])


@app.command("list")
def list_keys(ctx: typer.Context, output: OutputOption = Format.table) -> None:
    """The tenant's keys (never their secrets)."""
    table(
        state(ctx).client.list_keys(),
        [
            ("ID", lambda k: k["id"]),
            ("NAME", lambda k: k["name"]),
            ("ROLE", lambda k: k["role"]),
            ("PREFIX", lambda k: k["prefix"] + "…"),
            ("CREATED", lambda k: human_time(k["created"])),
            ("REVOKED", lambda k: human_time(k["revoked"]) if k["revoked"] else "-"),
        ],
        output,
        empty="no keys",
    )


@app.command("revoke")
def revoke(ctx: typer.Context, key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="key id")]) -> None:
    """Revoke a key: requests with it are refused from now on."""
    key = state(ctx).client.revoke_key(key_id)
    say(f"Revoked key {key['id']} ({key['name']})")
