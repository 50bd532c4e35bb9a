"""The typed context hooks receive: ``AgentContext`` and ``PluginClient`` match the real engine."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from agent_core import AgentContext, PluginClient, hookimpl, hookspecs
from agent_core.client import APIClient
from agent_core.context import PLUGIN_CLIENT_CALLS, RunEventSource
from tests.core.conftest import Backend, hook_specs, wait_until

ROOT = Path(__file__).resolve().parents[2]


def protocol_members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")}


class SeesTheContext:
    """An extension recording, from inside its hooks, whether ``agent`` is an AgentContext."""

    name = "sees-context"

    def __init__(self) -> None:
        self.seen: dict[str, bool] = {}
        self.missing: dict[str, list[str]] = {}

    def _look(self, hook: str, agent: Any) -> None:
        self.seen[hook] = (
            isinstance(agent, AgentContext)
            and isinstance(agent.client, PluginClient)
            and isinstance(agent.events, RunEventSource)
        )
        self.missing[hook] = [m for m in protocol_members(AgentContext) if not hasattr(agent, m)]

    @hookimpl
    def on_startup(self, agent: AgentContext) -> None:
        self._look("on_startup", agent)

    @hookimpl
    def heartbeat(self, agent: AgentContext) -> None:
        self._look("heartbeat", agent)


def test_a_running_agent_is_an_agent_context_in_its_hooks(make_agent) -> None:
    ext = SeesTheContext()
    make_agent([Backend(), ext], start=True)

    wait_until(lambda: "heartbeat" in ext.seen)

    assert ext.seen == {"on_startup": True, "heartbeat": True}
    assert ext.missing == {"on_startup": [], "heartbeat": []}


def test_the_api_client_is_a_plugin_client_with_the_same_signatures(sqlite_server) -> None:
    client = sqlite_server.client()

    assert isinstance(client, PluginClient)
    for name in PLUGIN_CLIENT_CALLS:
        declared = getattr(PluginClient, name)
        if isinstance(declared, property):
            continue
        real = inspect.signature(getattr(APIClient, name))
        assert list(inspect.signature(declared).parameters) == list(real.parameters), name


def test_plugin_client_calls_lists_exactly_the_protocol_members() -> None:
    assert set(PLUGIN_CLIENT_CALLS) == protocol_members(PluginClient)


def test_every_hook_that_takes_agent_annotates_it_as_agent_context() -> None:
    for hook in hook_specs():
        params = inspect.signature(getattr(hookspecs, hook)).parameters
        if "agent" in params:
            assert params["agent"].annotation == "AgentContext", hook


def test_docs_list_every_plugin_client_call_and_its_errors() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    section = text.partition("### The client")[2].partition("\n## ")[0]

    assert section, "docs/hooks.md has no '### The client' section"
    for name in PLUGIN_CLIENT_CALLS:
        assert re.search(rf"`{name}\b", section), f"docs/hooks.md does not list client call {name}"
    for error in ("APIUnavailable", "NotFound", "AuthError", "BadRequest"):
        assert error in section


def test_docs_list_every_agent_context_member() -> None:
    text = (ROOT / "docs" / "hooks.md").read_text()
    section = text.partition("## The agent object")[2].partition("\n## ")[0]

    for name in protocol_members(AgentContext):
        assert re.search(rf"`{name}\b", section), f"docs/hooks.md does not list agent.{name}"
