"""Plugin discovery through entry points, with fake ``importlib.metadata`` distributions.

Each test writes a distribution (``fakeplug-0.1.dist-info`` with METADATA and entry_points.txt)
and its modules into a temporary directory put on ``sys.path``: the real loader finds them as
it would an installed ``agent-plugin-*``.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core.errors import PluginError, UnknownBackend
from agent_core.plugins import describe_installed, get_plugin_manager

MODULES = {
    "fakeplug_mod": """
        from agent_core import hookimpl

        @hookimpl
        def deploy_flow(flow_run, run_config, agent):
            return "fake deployment"

        @hookimpl
        def check_deployment(flow_run, deployment, agent):
            return None

        @hookimpl
        def heartbeat(agent):
            pass
    """,
    "fakeext_mod": """
        from agent_core import hookimpl

        @hookimpl
        def on_startup(agent):
            pass
    """,
    "fakebad_mod": """
        raise ImportError("fakebad_mod must never be imported in these tests")
    """,
}

ENTRY_POINTS = """
    [agent.backends]
    fake = fakeplug_mod

    [agent.plugins]
    ext = fakeext_mod
    bad = fakebad_mod
"""


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The ``fakeplug`` 0.1 distribution with backend ``fake`` and extensions ``ext`` and ``bad``."""
    site = tmp_path / "site"
    info = site / "fakeplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS).lstrip())
    for module, source in MODULES.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("AGENT_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("AGENT_DEBUG_HOOKS", raising=False)
    yield site
    for module in MODULES:
        sys.modules.pop(module, None)


def plugin_names(pm) -> set[str]:
    return {pm.get_name(plugin) for plugin in pm.get_plugins()}


def test_the_named_backend_and_the_extensions_are_loaded(fake_dist: Path) -> None:
    pm = get_plugin_manager("fake", disabled=["bad"])

    assert {"fake", "ext"} <= plugin_names(pm)
    assert pm.hook.deploy_flow(flow_run=None, run_config=None, agent=None) == "fake deployment"


def test_only_the_named_backend_is_loaded(fake_dist: Path) -> None:
    pm = get_plugin_manager("local", disabled=["bad"])

    assert "fake" not in plugin_names(pm)
    assert "fakeplug_mod" not in sys.modules


def test_an_unknown_backend_lists_the_installed_ones_and_the_package_to_install(fake_dist: Path) -> None:
    with pytest.raises(UnknownBackend) as info:
        get_plugin_manager("kubernetes", disabled=["bad"])

    message = str(info.value)
    assert "'kubernetes'" in message
    assert "fake" in message and "local" in message
    assert "pip install agent-plugin-kubernetes" in message


def test_an_extension_disabled_by_environment_is_never_imported(
    fake_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_DISABLE_PLUGINS", "bad, other")

    pm = get_plugin_manager("fake")

    assert "fakebad_mod" not in sys.modules
    assert "bad" not in plugin_names(pm)
    assert "ext" in plugin_names(pm)


def test_an_extension_disabled_by_argument_is_never_imported(fake_dist: Path) -> None:
    pm = get_plugin_manager("fake", disabled=["bad"])

    assert "fakebad_mod" not in sys.modules
    assert pm.is_blocked("bad")


def test_an_extension_that_fails_to_import_is_a_plugin_error_naming_how_to_disable_it(fake_dist: Path) -> None:
    with pytest.raises(PluginError) as info:
        get_plugin_manager("fake")

    message = str(info.value)
    assert "'bad'" in message and "must never be imported" in message
    assert "--disable-plugin bad" in message


def test_a_disabled_backend_is_a_clear_error(fake_dist: Path) -> None:
    with pytest.raises(PluginError, match="disabled"):
        get_plugin_manager("fake", disabled=["fake", "bad"])

    assert "fakeplug_mod" not in sys.modules


def test_describe_installed_lists_distribution_version_and_hooks(fake_dist: Path) -> None:
    infos = {info.name: info for info in describe_installed(disabled=["bad"])}

    fake, ext, bad = infos["fake"], infos["ext"], infos["bad"]
    assert (fake.kind, fake.distribution, fake.version, fake.status) == ("backend", "fakeplug", "0.1", "ok")
    assert fake.hooks == ["check_deployment", "deploy_flow", "heartbeat"]
    assert (ext.kind, ext.distribution, ext.hooks) == ("extension", "fakeplug", ["on_startup"])
    assert bad.status == "disabled"
    assert "fakebad_mod" not in sys.modules
    assert infos["local"].distribution == "agent-plugin-local"
    assert "deploy_flow" in infos["local"].hooks


def test_describe_installed_reports_a_broken_plugin_instead_of_raising(fake_dist: Path) -> None:
    infos = {info.name: info for info in describe_installed()}

    assert infos["bad"].status.startswith("error:")
    assert infos["fake"].status == "ok"


def test_agent_debug_hooks_traces_hook_calls_to_the_agent_hooks_logger(
    fake_dist: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENT_DEBUG_HOOKS", "1")
    caplog.set_level(logging.DEBUG, logger="agent.hooks")
    pm = get_plugin_manager("fake", disabled=["bad"])

    pm.hook.deploy_flow(flow_run=None, run_config=None, agent=None)

    traced = [r.getMessage() for r in caplog.records if r.name == "agent.hooks"]
    assert any("deploy_flow" in line for line in traced)
    assert any("fake deployment" in line for line in traced)  # the result too


def test_without_agent_debug_hooks_nothing_is_traced(fake_dist: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.hooks")
    pm = get_plugin_manager("fake", disabled=["bad"])

    pm.hook.deploy_flow(flow_run=None, run_config=None, agent=None)

    assert [r for r in caplog.records if r.name == "agent.hooks"] == []


def test_each_plugin_manager_is_fresh() -> None:
    class Ext:
        name = "ext"

    first = get_plugin_manager(None, load_entrypoints=False, plugins=[Ext()])
    second = get_plugin_manager(None, load_entrypoints=False)

    assert first is not second
    assert not second.has_plugin("ext")
