"""Extension settings on the command line: ``config show`` masks them, ``doctor`` checks them,
``--set plugins.NAME.KEY=VALUE`` sets them; ``plugins list`` shows contract problems.

The extension is a fake installed distribution on ``sys.path``, found by the real loader.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import run_cli

NOTIFY = """
    from marshmallow import Schema, fields

    from agent_core import hookimpl


    class Settings(Schema):
        url = fields.String(required=True)
        timeout = fields.Float(load_default=5.0)
        token = fields.String(load_default="")


    @hookimpl
    def plugin_settings_schema():
        return ("notify", Settings())


    @hookimpl
    def on_startup(agent):
        agent.logger.warning("notify settings: %s", sorted(agent.plugin_settings("notify").items()))
"""

TAKER = """
    from agent_core import hookimpl

    @hookimpl
    def cancel_deployment(flow_run, deployment, agent, grace_seconds):
        return True
"""


@pytest.fixture
def notify_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    site = tmp_path / "site"
    info = site / "notifyplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: notifyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[agent.plugins]\nnotify = notifyplug_mod\ntaker = takerplug_mod\n")
    (site / "notifyplug_mod.py").write_text(textwrap.dedent(NOTIFY).lstrip())
    (site / "takerplug_mod.py").write_text(textwrap.dedent(TAKER).lstrip())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("AGENT_DISABLE_PLUGINS", "taker")
    yield
    sys.modules.pop("notifyplug_mod", None)
    sys.modules.pop("takerplug_mod", None)


def test_config_show_prints_extension_settings_with_secrets_masked(home, capsys, monkeypatch) -> None:
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__URL", "http://hooks.example")
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__TOKEN", "very-secret-token-value")

    code, out, _ = run_cli(capsys, "config", "show")

    assert code == 0
    assert "[plugins.notify]" in out
    assert "url = 'http://hooks.example'  # env AGENT__PLUGINS__NOTIFY__URL" in out
    assert "very-secret-token-value" not in out
    _, out, _ = run_cli(capsys, "config", "show", "-o", "json")
    shown = json.loads(out)["plugins"]["notify"]
    assert shown["url"] == "http://hooks.example"
    assert shown["token"] != "very-secret-token-value"


def test_doctor_checks_extension_settings_through_the_extensions_schema(home, capsys, monkeypatch, notify_dist):
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__TIMEOUT", "soon")

    code, out, _ = run_cli(capsys, "doctor", "--backend", "local", "-o", "json")

    (check,) = [c for c in json.loads(out) if c["name"] == "extension settings"]
    assert code == 1
    assert check["ok"] is False
    assert "extension 'notify'" in check["detail"] and "timeout" in check["detail"]
    assert "AGENT__PLUGINS__NAME__KEY" in check["fix"]


def test_doctor_passes_valid_extension_settings(home, capsys, monkeypatch, notify_dist):
    _code, out, _ = run_cli(
        capsys, "doctor", "--backend", "local", "--set", "plugins.notify.url=http://h", "-o", "json"
    )

    (check,) = [c for c in json.loads(out) if c["name"] == "extension settings"]
    assert check == {"name": "extension settings", "ok": True, "detail": "valid (notify)", "fix": ""}


def test_start_gives_set_extension_settings_to_the_extension(home, capsys, monkeypatch, notify_dist):
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__URL", "http://env")

    code, out, err = run_cli(
        capsys, "start", "--backend", "local", "--max-polls", "1", "--set", "plugins.notify.timeout=2.5"
    )

    assert code == 0, out + err
    assert "notify settings: [('timeout', 2.5), ('token', ''), ('url', 'http://env')]" in out + err


def test_start_refuses_an_unknown_extension_setting_naming_it(home, capsys, monkeypatch, notify_dist):
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__URL", "http://env")
    monkeypatch.setenv("AGENT__PLUGINS__NOTIFY__RETRIES", "3")

    code, _out, err = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1")

    assert code == 1
    assert (
        "invalid settings for extension 'notify': retries: unknown name; the names taken are timeout, token, url"
    ) in err


def test_plugins_list_shows_an_extension_taking_a_backend_hook_instead_of_ok(home, capsys, monkeypatch, notify_dist):
    monkeypatch.delenv("AGENT_DISABLE_PLUGINS")

    code, out, _ = run_cli(capsys, "plugins", "list", "-o", "json")

    status = {p["name"]: p["status"] for p in json.loads(out)}
    assert code == 0
    assert status["notify"] == "ok"
    assert status["taker"].startswith("error: hook 'cancel_deployment': an extension (agent.plugins) implements")


def test_start_refuses_an_extension_taking_a_backend_hook(home, capsys, monkeypatch, notify_dist):
    monkeypatch.delenv("AGENT_DISABLE_PLUGINS")

    code, _, err = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1")

    assert code == 1
    assert "plugin 'taker', hook 'cancel_deployment'" in err


def test_a_misspelt_backend_setting_says_which_one_was_meant(home, capsys):
    code, _out, err = run_cli(capsys, "start", "--backend", "local", "--max-polls", "1", "--set", "import_pths=x")

    assert code == 1
    assert "invalid settings for backend 'local': import_pths: unknown name; did you mean 'import_paths'?" in err
