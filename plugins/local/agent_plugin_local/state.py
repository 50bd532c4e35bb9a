"""The local backend's per-agent state, one typed object kept in ``agent.plugin_state("local")``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from agent_plugin_local.positions import OutputPositions
from agent_plugin_local.reaper import Reaper

BACKEND = "local"

_CREATE_LOCK = threading.Lock()


@dataclass
class LocalState:
    """What one agent's local backend holds between hook calls."""

    #: the supervisor processes this agent started, reaped as soon as they exit
    reaper: Reaper = field(default_factory=Reaper)
    #: how far each run's output was queued for the API (acknowledged: the run directory)
    output: OutputPositions = field(default_factory=OutputPositions)


def state_of(agent: Any) -> LocalState:
    """The agent's :class:`LocalState`, made on first use (hooks run on several threads)."""
    store = agent.plugin_state(BACKEND)
    found = store.get("state")
    if found is None:
        with _CREATE_LOCK:
            found = store.setdefault("state", LocalState())
    return found
