"""The ecs backend's per-agent state: one typed object instead of string-keyed dicts.

Kept in ``agent.plugin_state("ecs")`` (so two agents in one process never share it) and made
on first use: clients, the definition registry and its rate budget, the task tracker, the
per-task records, the loaded templates and the inferred default network. The clock and the
sleep are attributes, so tests replace them instead of patching modules.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_core.config import agent_home
from agent_plugin_ecs import templates
from agent_plugin_ecs.aws import AwsClients
from agent_plugin_ecs.names import BACKEND
from agent_plugin_ecs.network import DefaultNetwork, infer_default_network
from agent_plugin_ecs.output import PAGE_LIMIT
from agent_plugin_ecs.ratelimit import RateBudget
from agent_plugin_ecs.runstate import TaskRecord
from agent_plugin_ecs.schemas import EcsSettings
from agent_plugin_ecs.taskdef import DefinitionRegistry
from agent_plugin_ecs.tasks import TaskTracker


class EcsState:
    def __init__(self, settings: EcsSettings, *, workers: int = 10) -> None:
        self.settings = settings
        self.clients = AwsClients(settings, pool_size=max(workers + 4, 10))
        self.budget = RateBudget(settings.register_rate, settings.register_burst)
        self.registry = DefinitionRegistry(self.clients, self.budget)
        self.tracker = TaskTracker(self.clients)
        self.state_dir = Path(settings.state_dir).expanduser() if settings.state_dir else agent_home() / "ecs-runs"
        self.clock: Callable[[], float] = time.monotonic
        self.sleep: Callable[[float], None] = time.sleep
        self.log_page_limit = PAGE_LIMIT
        self.closed = False
        self.checks: dict[str, tuple[float, Any]] = {}  # preflight results by name, with their time
        self._lock = threading.Lock()
        self._records: dict[str, TaskRecord] = {}
        self._templates: dict[str, dict[str, Any] | None] = {}
        self._network: DefaultNetwork | None = None
        self._network_lock = threading.Lock()

    # --- per-task records ---------------------------------------------------------------------

    def record(self, key: str) -> TaskRecord:
        with self._lock:
            if key not in self._records:
                self._records[key] = TaskRecord.load(self.state_dir, key)
            return self._records[key]

    def forget(self, key: str) -> None:
        with self._lock:
            found = self._records.pop(key, None)
        (found or TaskRecord.load(self.state_dir, key)).remove()

    # --- templates ----------------------------------------------------------------------------

    def task_definition_template(self) -> dict[str, Any] | None:
        """The agent's task-definition template (read once). :raise TemplateError:"""
        return self._template("task_definition_template", templates.load_task_definition)

    def run_task_template(self) -> dict[str, Any] | None:
        """The agent's run-task template (read once). :raise TemplateError:"""
        return self._template("run_task_template", templates.load_run_task)

    def _template(self, setting: str, load: Callable[[str, AwsClients], dict[str, Any]]) -> dict[str, Any] | None:
        location = getattr(self.settings, setting)
        if not location:
            return None
        with self._lock:
            if setting in self._templates:
                return self._templates[setting]
        try:
            loaded = load(location, self.clients)
        except templates.TemplateError as exc:
            raise templates.TemplateError(f"{setting}: {exc}") from None
        with self._lock:
            self._templates[setting] = loaded
        return loaded

    # --- the default network ------------------------------------------------------------------

    def default_network(self) -> DefaultNetwork:
        """The default VPC's network (looked up once). :raise NoDefaultVpc: :raise AwsUnavailable:"""
        with self._network_lock:
            if self._network is None:
                self._network = infer_default_network(self.clients)
            return self._network


def state_of(agent: Any) -> EcsState:
    store = agent.plugin_state(BACKEND)
    found = store.get("state")
    if found is None:
        # setdefault is atomic: two threads racing here end up with the same state.
        found = store.setdefault("state", EcsState(agent.backend_settings, workers=agent.settings.workers))
    return found
