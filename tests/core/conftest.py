"""Engine test support: a controllable clock, in-test plugins and an agent factory.

Agents built here talk to a real API server (waitress on loopback over a SQLite file unless a
test passes another ``server``) and get their plugins from a manager with no entry points.
Nothing of the engine or the client is mocked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pendulum
import pluggy
import pytest

from agent_core import Deployment, DeploymentStatus, FlowRun, hookimpl, hookspecs
from agent_core.client import APIClient
from agent_core.engine.agent import Agent
from agent_core.engine.settings import AgentSettings
from agent_core.plugins import get_plugin_manager
from agent_core.testing import harness
from agent_core.testing.servers import APIServer

# --- the hooks -----------------------------------------------------------------------------


def hook_specs() -> dict[str, dict[str, Any]]:
    """Every hook of :mod:`agent_core.hookspecs`, name -> spec options (``firstresult``...)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    specs = {}
    for name in dir(hookspecs):
        opts = pm.parse_hookspec_opts(hookspecs, name)
        if opts is not None:
            specs[name] = dict(opts)
    return specs


# --- waiting ---------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or fail after ``timeout`` s."""
    value = harness.wait_until(predicate, timeout, interval)
    if not value:
        pytest.fail(f"timed out after {timeout}s waiting for {getattr(predicate, '__name__', predicate)}")
    return value


# --- the clock -------------------------------------------------------------------------------


class FakeClock:
    """Implements the engine's ``Clock`` protocol with time that moves only when waited on.

    ``wait(event, timeout)`` records ``(thread name, timeout)``, moves the clock forward by
    ``timeout`` at once and answers ``event.is_set()``. ``on_wait(timeout)``, if set, runs in
    the waiting thread first: a test uses it to act "during" a wait or to hold a thread.
    """

    def __init__(self, start: pendulum.DateTime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = start or pendulum.now("UTC")
        self._monotonic = 1000.0
        self.waits: list[tuple[str, float]] = []
        self.on_wait: Callable[[float], None] | None = None

    def now(self) -> pendulum.DateTime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now = self._now.add(microseconds=round(seconds * 1_000_000))
            self._monotonic += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._lock:
            self.waits.append((threading.current_thread().name, timeout))
        if self.on_wait is not None:
            self.on_wait(timeout)
        self.advance(timeout)
        return event.is_set()

    def waits_of(self, thread_prefix: str) -> list[float]:
        """The timeouts asked for by threads whose name starts with ``thread_prefix``."""
        with self._lock:
            return [timeout for name, timeout in self.waits if name.startswith(thread_prefix)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# --- in-test plugins -------------------------------------------------------------------------


class Backend:
    """A backend whose workloads are entries in a list.

    ``deploy_flow`` records the run and its resolved run config and returns a
    :class:`Deployment`; ``behaviour`` (a callable taking the hook's arguments) replaces what it
    does, for a backend that fails, blocks or returns something else.
    """

    def __init__(self, name: str = "x", behaviour: Callable[..., Any] | None = None) -> None:
        self.name = name  # the plugin's name in the manager
        self.behaviour = behaviour
        self.deployed: list[FlowRun] = []
        self.run_configs: dict[str, Any] = {}
        self.deployed_by: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def deployed_ids(self) -> list[str]:
        with self._lock:
            return [run.id for run in self.deployed]

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Agent) -> Any:
        with self._lock:
            self.deployed.append(flow_run)
            self.run_configs[flow_run.id] = run_config
            self.deployed_by.setdefault(flow_run.id, []).append(agent.name)
        if self.behaviour is not None:
            return self.behaviour(flow_run=flow_run, run_config=run_config, agent=agent)
        return Deployment(self.name, f"wl-{flow_run.key}", info=f"workload wl-{flow_run.key}")


class MonitoredBackend(Backend):
    """A backend that also answers ``check_deployment``, ``deployment_logs`` and ``cancel_deployment``.

    ``statuses[run_id]`` is what ``check_deployment`` says (running until set); ``output`` is the
    workload's output; ``cancels`` records ``(run id, grace_seconds)``.
    """

    def __init__(self, name: str = "x", output: list[str] | None = None) -> None:
        super().__init__(name)
        self.statuses: dict[str, DeploymentStatus] = {}
        self.output = output or []
        self.cancels: list[tuple[str, float]] = []
        self.checks = 0

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment) -> DeploymentStatus:
        self.checks += 1
        return self.statuses.get(flow_run.id, DeploymentStatus.running())

    @hookimpl
    def deployment_logs(self, flow_run: FlowRun, tail: int) -> list[str]:
        return self.output[-tail:]

    @hookimpl
    def cancel_deployment(self, flow_run: FlowRun, grace_seconds: float) -> bool:
        self.cancels.append((flow_run.id, grace_seconds))
        self.statuses[flow_run.id] = DeploymentStatus.exited(-15, "terminated")
        return True


# --- servers, runs and agents ----------------------------------------------------------------


def create_run(client: APIClient, flow: str = "test-flow", command: str = "true", **kwargs: Any) -> dict[str, Any]:
    """A Scheduled run of ``flow`` (registered with ``command`` if need be)."""
    registered = client.register_flow(flow, command)
    return client.create_flow_run(flow_id=registered["id"], **kwargs)


def run_state(client: APIClient, run_id: str) -> str:
    return client.get_flow_run(run_id)["state"]["type"]


def run_logs(client: APIClient, run_id: str) -> list[dict[str, Any]]:
    return client.read_logs(run_id)[0]


def wait_for_state(client: APIClient, run_id: str, *states: str, timeout: float = 10.0) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        run = client.get_flow_run(run_id)
        return run if run["state"]["type"] in states else None

    reached.__name__ = f"run {run_id} in {states}"
    return wait_until(reached, timeout)


FAST_SETTINGS: dict[str, Any] = {
    "heartbeat_period": 0.2,
    "monitor_interval": 0.05,
    "max_workers": 4,
    "drain_timeout": 5.0,
    "cancel_grace_seconds": 1.5,
}


class AgentFactory:
    """``make_agent(plugins=[...], **settings)``: an :class:`Agent` on a real API server.

    ``server`` (default: the test's SQLite server), ``clock`` and ``backend`` (default ``"x"``)
    choose its surroundings; other keywords are :class:`AgentSettings`. ``start=True`` runs
    ``agent.start()`` on a thread; ``prepare=True`` does start-up up to the poll loop by hand
    (settings, connect, run-log shipping) for tests that drive ``poll_once`` / ``poll_loop``.
    Teardown stops every agent and unregisters the plugins.
    """

    def __init__(self, default_server: APIServer) -> None:
        self._default_server = default_server
        self._count = 0
        self._started: list[tuple[Agent, threading.Thread]] = []
        self._prepared: list[Agent] = []
        self._created: list[Agent] = []
        self._managers: list[tuple[Any, list[Any]]] = []
        self.errors: dict[str, BaseException] = {}

    def __call__(
        self,
        plugins: list[Any] | None = None,
        *,
        server: APIServer | None = None,
        client: APIClient | None = None,
        clock: Any = None,
        backend: str = "x",
        start: bool = False,
        prepare: bool = False,
        **settings: Any,
    ) -> Agent:
        plugins = list(plugins if plugins is not None else [Backend(backend)])
        if client is None:
            server = server or self._default_server
            client = server.client()
        self._count += 1
        settings.setdefault("name", f"agent-{self._count}")
        pm = get_plugin_manager(backend, load_entrypoints=False, plugins=plugins)
        self._managers.append((pm, plugins))
        agent = Agent(AgentSettings(backend=backend, **{**FAST_SETTINGS, **settings}), client, pm, clock=clock)
        self._created.append(agent)
        if start:
            self.start(agent)
        elif prepare:
            self.prepare(agent)
        return agent

    def start(self, agent: Agent) -> threading.Thread:
        def run() -> None:
            try:
                agent.start()
            except BaseException as exc:  # kept for the test to look at
                self.errors[agent.name] = exc

        thread = threading.Thread(target=run, name=f"agent-{agent.name}", daemon=True)
        thread.start()
        self._started.append((agent, thread))
        return thread

    def prepare(self, agent: Agent) -> Agent:
        agent.load_backend_contract()
        agent.connect()
        agent.run_logs.start()
        self._prepared.append(agent)
        return agent

    def close(self) -> None:
        for agent, _thread in self._started:
            agent.stop()
        for agent, thread in self._started:
            thread.join(20)
            assert not thread.is_alive(), f"agent {agent.name} did not stop"
        for agent in self._prepared:
            agent.stop()
            agent.pool.drain(5)
            agent.run_logs.stop(time.monotonic() + 10)
        started = {id(agent) for agent, _ in self._started}
        for agent in self._created:
            if id(agent) not in started and agent not in self._prepared:
                agent.pool.drain(1)  # ends the deploy threads the Agent made
        for pm, plugins in self._managers:
            for plugin in plugins:
                if pm.is_registered(plugin):
                    pm.unregister(plugin)


@pytest.fixture
def make_agent(sqlite_server: APIServer) -> Iterator[AgentFactory]:
    """The agent factory. A test passing ``server=api_server`` lists ``api_server`` before
    ``make_agent`` in its arguments, so that its agents stop before their server does."""
    factory = AgentFactory(sqlite_server)
    yield factory
    factory.close()
