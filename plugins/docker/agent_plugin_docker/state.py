"""The docker backend's per-agent state: one typed object kept in ``agent.plugin_state("docker")``.

Hooks run on several threads at once (deploy, monitor, heartbeat, cancel), so everything here
that is shared has its lock next to it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_core.config import agent_home
from agent_plugin_docker.runstate import RunState

if TYPE_CHECKING:
    import docker

BACKEND = "docker"
# Belt and braces: a container younger than this is never reaped by the heartbeat, whatever
# the runs say (an agent that stops reaps without waiting: it deploys nothing any more).
REAP_MIN_AGE = 10.0

_CREATE_LOCK = threading.Lock()


@dataclass
class DockerState:
    """What one agent's docker backend holds between hook calls."""

    #: the Docker client, made on first use (see :mod:`agent_plugin_docker.daemon`)
    client: docker.DockerClient | None = None
    #: set by ``on_shutdown``: a hook still finishing on another thread must not reconnect
    closed: bool = False
    client_lock: threading.Lock = field(default_factory=threading.Lock)
    #: the daemon's ``version()`` answer, kept while it answers pings (preflight runs often)
    daemon_info: dict[str, Any] | None = None

    #: per container (``<run id>-<attempt>``): what was shipped of its output, how it ended
    runs: dict[str, RunState] = field(default_factory=dict)
    ship_locks: dict[str, threading.Lock] = field(default_factory=dict)
    runs_lock: threading.Lock = field(default_factory=threading.Lock)

    #: one pull at a time per image, and when each image was last pulled
    pull_locks: dict[str, threading.Lock] = field(default_factory=dict)
    pulled_at: dict[str, float] = field(default_factory=dict)
    pull_locks_guard: threading.Lock = field(default_factory=threading.Lock)

    #: containers kept (``auto_remove: false``) whose runs are over: not looked at again
    settled: set[str] = field(default_factory=set)
    reap_min_age: float = REAP_MIN_AGE

    def run_state(self, state_dir: Path, key: str) -> RunState:
        """The record of container ``key``, loaded from its file the first time."""
        with self.runs_lock:
            if key not in self.runs:
                self.runs[key] = RunState.load(state_dir, key)
            return self.runs[key]

    def forget(self, state_dir: Path, key: str) -> None:
        """Drop the record of container ``key``, its file included."""
        with self.runs_lock:
            found = self.runs.pop(key, None)
            self.ship_locks.pop(key, None)
        (found or RunState.load(state_dir, key)).remove()

    def ship_lock(self, key: str) -> threading.Lock:
        with self.runs_lock:
            return self.ship_locks.setdefault(key, threading.Lock())

    def pull_lock(self, image: str) -> threading.Lock:
        with self.pull_locks_guard:
            return self.pull_locks.setdefault(image, threading.Lock())


def state_of(agent: Any) -> DockerState:
    """The agent's :class:`DockerState`, made on first use."""
    store = agent.plugin_state(BACKEND)
    found = store.get("state")
    if found is None:
        with _CREATE_LOCK:
            found = store.setdefault("state", DockerState())
    return found


def state_dir(agent: Any) -> Path:
    """Where the per-container state files live (``[backends.docker] state_dir``)."""
    configured = agent.backend_settings.get("state_dir")
    return Path(configured).expanduser() if configured else agent_home() / "docker-runs"
