"""Contract checks at start-up and in ``agent plugins list``: each problem names the plugin and the hook.

The plugins are fake installed distributions (``contractplug-0.1.dist-info`` on ``sys.path``),
found by the real entry-point loader.
"""

from __future__ import annotations

import logging
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core import hookimpl
from agent_core.errors import PluginError
from agent_core.plugins import describe_installed, get_plugin_manager
from tests.core.conftest import Backend

MODULES = {
    "contract_good_backend": """
        from agent_core import hookimpl

        @hookimpl
        def deploy_flow(flow_run, run_config, agent):
            return "deployed"

        @hookimpl
        def check_deployment(flow_run, deployment, agent):
            return None
    """,
    "contract_no_check_backend": """
        from agent_core import hookimpl

        @hookimpl
        def deploy_flow(flow_run, run_config, agent):
            return "deployed"
    """,
    "contract_no_deploy_backend": """
        from agent_core import hookimpl

        @hookimpl
        def check_deployment(flow_run, deployment, agent):
            return None
    """,
    "contract_typo_ext": """
        from agent_core import hookimpl

        @hookimpl
        def heartbeet(agent):
            pass
    """,
    "contract_taker_ext": """
        from agent_core import hookimpl

        @hookimpl
        def deploy_flow(flow_run, run_config, agent):
            return "stolen"
    """,
    "contract_optional_ext": """
        from agent_core import hookimpl

        @hookimpl(optionalhook=True)
        def a_hook_of_a_newer_core(agent):
            pass
    """,
}

ENTRY_POINTS = """
    [agent.backends]
    good = contract_good_backend
    nocheck = contract_no_check_backend
    nodeploy = contract_no_deploy_backend

    [agent.plugins]
    typo = contract_typo_ext
    taker = contract_taker_ext
    optional = contract_optional_ext
"""
EXTENSIONS = ["typo", "taker", "optional"]


@pytest.fixture
def contract_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    info = site / "contractplug-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: contractplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(ENTRY_POINTS).lstrip())
    for module, source in MODULES.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source).lstrip())
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delenv("AGENT_DISABLE_PLUGINS", raising=False)
    yield site
    for module in MODULES:
        sys.modules.pop(module, None)


def others(*keep: str) -> list[str]:
    return [name for name in EXTENSIONS if name not in keep]


def test_a_misspelt_hook_is_a_start_up_error_naming_plugin_hook_and_the_nearest_hook(contract_dist) -> None:
    with pytest.raises(PluginError) as info:
        get_plugin_manager("good", disabled=others("typo"))

    assert "plugin 'typo', hook 'heartbeet': no such hook; did you mean 'heartbeat'?" in str(info.value)


def test_an_extension_implementing_a_backend_only_hook_is_a_start_up_error(contract_dist) -> None:
    with pytest.raises(PluginError) as info:
        get_plugin_manager("good", disabled=others("taker"))

    assert "plugin 'taker', hook 'deploy_flow': an extension (agent.plugins) implements a backend-only hook" in str(
        info.value
    )


def test_a_backend_without_deploy_flow_is_a_start_up_error(contract_dist) -> None:
    with pytest.raises(PluginError, match="plugin 'nodeploy', hook 'deploy_flow': a backend must implement"):
        get_plugin_manager("nodeploy", disabled=EXTENSIONS)


def test_a_backend_without_check_deployment_is_a_logged_warning(contract_dist, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="agent.hooks"):
        get_plugin_manager("nocheck", disabled=EXTENSIONS)

    assert "plugin 'nocheck', hook 'check_deployment': not implemented" in caplog.text


def test_an_optional_hook_that_does_not_exist_is_allowed(contract_dist) -> None:
    pm = get_plugin_manager("good", disabled=others("optional"))

    assert pm.has_plugin("optional")


def test_every_error_is_named_when_several_plugins_break_the_contract(contract_dist) -> None:
    with pytest.raises(PluginError) as info:
        get_plugin_manager("nodeploy", disabled=["optional"])

    for plugin, hook in (("typo", "heartbeet"), ("taker", "deploy_flow"), ("nodeploy", "deploy_flow")):
        assert f"plugin {plugin!r}, hook {hook!r}" in str(info.value)


def test_plugins_list_shows_each_problem_instead_of_ok(contract_dist) -> None:
    status = {info.name: info.status for info in describe_installed()}

    assert status["good"] == "ok"
    assert status["optional"] == "ok"
    assert status["typo"].startswith("error: hook 'heartbeet': no such hook; did you mean 'heartbeat'?")
    assert status["taker"].startswith("error: hook 'deploy_flow': an extension")
    assert status["nodeploy"].startswith("error: hook 'deploy_flow': a backend must implement deploy_flow")
    assert status["nocheck"].startswith("warning: hook 'check_deployment': not implemented")


def test_in_test_extensions_are_checked_as_extensions() -> None:
    class Taker:
        name = "in-test-taker"

        @hookimpl
        def check_deployment(self, flow_run, deployment, agent):
            return None

    with pytest.raises(PluginError, match="plugin 'in-test-taker', hook 'check_deployment': an extension"):
        get_plugin_manager("x", load_entrypoints=False, plugins=[Backend()], extensions=[Taker()])
