"""The docs cover what the code has: every command group, every setting, every endpoint, every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from agent_core.cli.main import app
from agent_core.config import DEFAULTS
from agent_core.server.endpoints import ENDPOINTS

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
ROLES = ("runner", "user", "admin")


def page(name: str) -> str:
    return (DOCS / name).read_text()


def command_groups() -> list[str]:
    click_app = typer.main.get_command(app)
    return sorted(click_app.commands)  # type: ignore[attr-defined]


def commands() -> list[str]:
    """Every command as typed: ``start``, ``runs create``, ``plugins list``..."""
    click_app = typer.main.get_command(app)
    out = []
    for name, command in click_app.commands.items():  # type: ignore[attr-defined]
        subcommands = getattr(command, "commands", None)
        if subcommands:
            out += [f"{name} {sub}" for sub in subcommands]
        else:
            out.append(name)
    return sorted(out)


def test_the_cli_has_the_groups_the_docs_were_written_for() -> None:
    assert {"start", "doctor", "server", "flows", "runs", "agents", "keys", "config", "plugins"} <= set(
        command_groups()
    )


@pytest.mark.parametrize("group", command_groups())
def test_every_command_group_is_in_the_cli_page(group: str) -> None:
    assert re.search(rf"^#+ agent {group}\b", page("cli.md"), re.M), f"docs/cli.md has no heading for agent {group}"


@pytest.mark.parametrize("command", commands())
def test_every_command_is_in_the_cli_page(command: str) -> None:
    assert f"agent {command}" in page("cli.md"), f"docs/cli.md does not mention agent {command}"


def option_names() -> list[tuple[str, str]]:
    click_app = typer.main.get_command(app)
    out = [("(root)", opt) for param in click_app.params for opt in param.opts if opt.startswith("--")]
    for name, command in click_app.commands.items():  # type: ignore[attr-defined]
        for sub_name, sub in (getattr(command, "commands", None) or {name: command}).items():
            label = name if sub is command else f"{name} {sub_name}"
            out += [(label, opt) for param in sub.params for opt in param.opts if opt.startswith("--")]
    return sorted(set(out))


@pytest.mark.parametrize(("command", "option"), option_names())
def test_every_option_is_in_the_cli_page(command: str, option: str) -> None:
    if option == "--help":
        return
    assert option in page("cli.md"), f"docs/cli.md does not mention {option} of agent {command}"


@pytest.mark.parametrize("setting", [f"{section}.{key}" for section, keys in DEFAULTS.items() for key in keys], ids=str)
def test_every_setting_is_in_the_configuration_page(setting: str) -> None:
    section, key = setting.split(".")
    text = page("configuration.md")
    assert f"`[{section}]`" in text, f"docs/configuration.md has no [{section}] section"
    assert f"| `{key}` |" in text, f"docs/configuration.md has no table row for {setting}"


def test_every_setting_section_is_in_the_configuration_page() -> None:
    text = page("configuration.md")
    missing = [section for section in DEFAULTS if f"`[{section}]`" not in text]
    assert missing == []


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_every_endpoint_is_in_the_api_page(endpoint) -> None:
    text = page("api.md")
    name = f"{endpoint.method} {endpoint.path}"
    assert f"`{name}`" in text, f"docs/api.md does not mention {name}"
    roles = "public" if endpoint.roles is None else ", ".join(r for r in ROLES if r in endpoint.roles)
    row = f"| `{name}` | {roles} |"
    assert row in text, f"docs/api.md's roles table is missing or wrong for {name}: {row}"


def test_the_openapi_document_is_in_the_api_page() -> None:
    assert "`GET /api/openapi.json`" in page("api.md")


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = re.findall(r":\s+([\w./-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(nav) == pages


def slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) gives a heading."""
    text = re.sub(r"[^\w\s-]", "", heading.replace("`", "")).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+\s+(.+?)\s*$", text, re.M)}


def test_links_between_pages_resolve_with_their_anchors() -> None:
    broken = []
    for path in sorted(DOCS.rglob("*.md")):
        text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
        for target, anchor in re.findall(r"\]\(([^)#:\s]*)(?:#([^)\s]+))?\)", text):
            if target and not target.endswith(".md"):
                continue
            file = (path.parent / target).resolve() if target else path
            if not file.is_file():
                broken.append(f"{path.relative_to(DOCS)} -> {target}")
            elif anchor and anchor not in anchors(file):
                broken.append(f"{path.relative_to(DOCS)} -> {target}#{anchor}")
    assert broken == []
