"""What a hook may use of the ``agent`` it receives: :class:`AgentContext` and :class:`PluginClient`.

Hooks are handed the running engine's ``Agent``; these Protocols are the part of it that is
public and stable, so plugin code can be type-checked (``agent: AgentContext``) without
depending on the engine's internals. The engine's ``Agent`` satisfies both (a test checks every
member on a real running agent). Anything not listed here may change without notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from agent_core.engine.events import RunEvent
    from agent_core.engine.settings import AgentSettings
    from agent_core.models import FlowRun

__all__ = ["PLUGIN_CLIENT_CALLS", "AgentContext", "PluginClient", "RunEventSource"]


@runtime_checkable
class RunEventSource(Protocol):
    """``agent.events``: the agent's run events, for in-process listeners (``docs/hooks.md``)."""

    def subscribe(self, callback: Callable[[RunEvent], None]) -> None:
        """Call ``callback(event)`` for every run event, on the run-events thread, before the
        ``flow_run_state_changed`` hooks. It must return quickly (slow ones are logged)."""
        ...


@runtime_checkable
class PluginClient(Protocol):
    """The calls of :class:`agent_core.client.APIClient` a plugin may make (``agent.client``).

    Reads, plus creating and cancelling runs. Every call raises a subclass of
    :class:`agent_core.errors.APIError`: :class:`~agent_core.errors.APIUnavailable` when the
    API cannot be reached or answers garbage (after the client's retries on idempotent calls;
    ``BadAPIAnswer`` and ``StorageUnavailable`` are kinds of it), ``NotFound`` for an unknown id
    or name, ``AuthError`` when the agent's key may not do it, ``BadRequest`` for a refused
    request. State changes are the engine's: a plugin never sets a run's state itself.
    """

    @property
    def url(self) -> str:
        """The API's base URL (``http://127.0.0.1:4200``; a placeholder for the in-process API)."""
        ...

    def hello(self) -> dict[str, Any]:
        """``GET /api/hello``: the server's ``name``, ``version`` and ``features``."""
        ...

    def get_flow(self, id_or_name: str) -> dict[str, Any]:
        """A flow by id or name. :raise NotFound:"""
        ...

    def get_flow_run(self, run_id: str) -> dict[str, Any]:
        """A run as the API shows it (state, version, attempt, deployment...). :raise NotFound:"""
        ...

    def list_flow_runs(
        self,
        *,
        states: list[str] | None = None,
        flow: str | None = None,
        agent_id: str | None = None,
        label: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first, filtered by state names, flow, claiming agent or label."""
        ...

    def flow_run_states(self, run_id: str) -> list[dict[str, Any]]:
        """A run's state history, oldest first (``type``, ``message``, ``timestamp``). :raise NotFound:"""
        ...

    def read_logs(self, run_id: str, cursor: str | None = None, limit: int = 1000) -> tuple[list[dict[str, Any]], str]:
        """A page of a run's logs and the cursor of the next page (empty items at the end)."""
        ...

    def create_flow_run(
        self,
        *,
        flow_id: str | None = None,
        flow_name: str | None = None,
        parameters: dict[str, Any] | None = None,
        labels: list[str] | None = None,
        run_config: dict[str, Any] | None = None,
        scheduled_start_time: Any = None,
        idempotency_key: str | None = None,
        max_retries: int = 0,
        retry_delay_seconds: float = 0.0,
        name: str | None = None,
    ) -> dict[str, Any]:
        """Create a run (safe to retry: an idempotency key is sent). :raise NotFound: unknown flow.
        :raise BadRequest: invalid parameters or run config."""
        ...

    def cancel_flow_run(self, run_id: str, message: str = "") -> dict[str, Any]:
        """Ask for a run's cancellation (Cancelling; the deploying agent stops it). :raise NotFound:"""
        ...

    def list_agents(self) -> list[dict[str, Any]]:
        """The tenant's agents with their last heartbeat."""
        ...


#: the names of :class:`PluginClient`'s members, as listed in ``docs/hooks.md``
PLUGIN_CLIENT_CALLS: tuple[str, ...] = (
    "url",
    "hello",
    "get_flow",
    "get_flow_run",
    "list_flow_runs",
    "flow_run_states",
    "read_logs",
    "create_flow_run",
    "cancel_flow_run",
    "list_agents",
)


@runtime_checkable
class AgentContext(Protocol):
    """What every hook's ``agent`` argument offers (``from agent_core import AgentContext``).

    Attributes are read-only for plugins. ``id`` is empty until the agent has registered (it is
    set from ``on_startup`` on). Methods may be called from any hook's thread.
    """

    @property
    def id(self) -> str:
        """The agent's id from the API."""
        ...

    @property
    def name(self) -> str:
        """The agent's name (``--name``; by default ``HOST-BACKEND``)."""
        ...

    @property
    def backend(self) -> str:
        """The backend's name (``--backend``)."""
        ...

    @property
    def labels(self) -> list[str]:
        """The agent's labels, sorted (an agent config's included)."""
        ...

    @property
    def env(self) -> dict[str, str | None]:
        """The agent's ``--env`` / ``[agent] env`` variables for every workload."""
        ...

    @property
    def settings(self) -> AgentSettings:
        """The agent's ``[agent]`` settings (``heartbeat_period``, ``cancel_grace_seconds``...)."""
        ...

    @property
    def backend_settings(self) -> Any:
        """The backend's settings as loaded by its ``settings_schema`` (``{}`` without one)."""
        ...

    @property
    def client(self) -> PluginClient:
        """The API client (only the calls of :class:`PluginClient` are for plugins)."""
        ...

    @property
    def logger(self) -> logging.Logger:
        """The agent's logger (``agent.NAME``), printed by ``agent start``."""
        ...

    @property
    def api_url(self) -> str:
        """The API URL workloads are given (``AGENT_API_URL``)."""
        ...

    @property
    def api_key(self) -> str:
        """The agent's own key (may be empty); never give it to workloads unasked."""
        ...

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """The settings of extension ``name`` (``[plugins.NAME]``) as its schema loaded them.

        ``{}`` for an extension without settings. :raise KeyError: no such extension is loaded.
        """
        ...

    def write_run_log(self, flow_run: FlowRun | str, message: str, level: str = "INFO") -> None:
        """Append a line to a run's logs (batched, sent in the background)."""
        ...

    def write_output(
        self, flow_run: FlowRun, message: str, level: str = "INFO", *, on_shipped: Callable[[], None] | None = None
    ) -> None:
        """Append a line of the workload's output to the run's logs, unless output is off for the run.

        ``on_shipped`` is called once the API has the line (at once when output is off): move a
        position kept in the workload's output then, never when the line is only queued.
        """
        ...

    def flow_run_env(
        self,
        flow_run: FlowRun,
        run_config_env: Mapping[str, str | None] | None = None,
        *,
        base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The workload's environment, exactly the variables to set (``docs/workload.md``)."""
        ...

    def set_problem(self, name: str, message: str) -> None:
        """Make the health endpoint answer 503 with ``message`` until :meth:`clear_problem`."""
        ...

    def clear_problem(self, name: str) -> None:
        """Undo :meth:`set_problem`."""
        ...

    def plugin_state(self, name: str) -> dict[str, Any]:
        """A dict for the plugin's per-agent state (instead of module globals)."""
        ...

    @property
    def events(self) -> RunEventSource:
        """The agent's run events (``events.subscribe(callback)``); plugins usually implement
        the ``flow_run_state_changed`` hook instead."""
        ...
