"""The order in which the engine calls every hook, start-up failures, and hook validation."""

from __future__ import annotations

import threading
from typing import Any

import pluggy
import pytest

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl, hookspecs
from agent_core.client import APIClient
from agent_core.errors import PluginError, StartupError
from agent_core.plugins import get_plugin_manager
from tests.core.conftest import Backend, create_run, hook_specs, wait_for_state, wait_until

HOOK_NAMES = sorted(hook_specs())


class AllHooks:
    """A backend implementing every hook, recording ``(hook, thread)`` for each call.

    The first run's workload exits with code 3; later ones keep running until cancelled.
    """

    name = "x"

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self.calls: list[tuple[str, str]] = []
        self.registered_at: dict[str, bool] = {}
        self.failing: set[str] = set()
        self._lock = threading.Lock()

    def _record(self, hook: str) -> None:
        with self._lock:
            self.calls.append((hook, threading.current_thread().name))

    def names(self) -> list[str]:
        with self._lock:
            return [hook for hook, _ in self.calls]

    def _registered(self) -> bool:
        return any(a["name"] == "lifecycle" for a in self.client.list_agents())

    @hookimpl
    def settings_schema(self) -> None:
        self._record("settings_schema")
        self.registered_at["settings_schema"] = self._registered()

    @hookimpl
    def run_config_schema(self) -> None:
        self._record("run_config_schema")
        self.registered_at["run_config_schema"] = self._registered()

    @hookimpl
    def plugin_settings_schema(self) -> None:
        self._record("plugin_settings_schema")
        self.registered_at["plugin_settings_schema"] = self._registered()

    @hookimpl
    def on_startup(self, agent: Any) -> None:
        self._record("on_startup")
        self.registered_at["on_startup"] = self._registered() and bool(agent.id)

    @hookimpl
    def preflight(self, agent: Any) -> list[CheckResult]:
        self._record("preflight")
        return [CheckResult("everything", True, "fine")]

    @hookimpl
    def list_deployments(self, agent: Any) -> list[LiveDeployment]:
        self._record("list_deployments")
        return []

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: Any) -> Deployment:
        self._record("deploy_flow")
        agent.flow_run_env(flow_run)  # as backends do: it calls the flow_run_env hooks
        if not self.failing:
            self.failing.add(flow_run.id)
        return Deployment("x", f"wl-{flow_run.key}")

    @hookimpl
    def flow_run_env(self, flow_run: FlowRun, agent: Any) -> dict[str, str]:
        self._record("flow_run_env")
        return {}

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
        self._record("check_deployment")
        return DeploymentStatus.exited(3) if flow_run.id in self.failing else DeploymentStatus.running()

    @hookimpl
    def deployment_logs(self, flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str]:
        self._record("deployment_logs")
        return ["the last line"]

    @hookimpl
    def cancel_deployment(self, flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
        self._record("cancel_deployment")
        return True

    @hookimpl
    def heartbeat(self, agent: Any) -> None:
        self._record("heartbeat")

    @hookimpl
    def flow_run_state_changed(self, flow_run: FlowRun, old_state: Any, new_state: Any, agent: Any) -> None:
        self._record("flow_run_state_changed")

    @hookimpl
    def on_shutdown(self, agent: Any) -> None:
        self._record("on_shutdown")


def first_occurrences(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


@pytest.fixture
def lifecycle(make_agent, sqlite_api: APIClient) -> AllHooks:
    """Drive one agent through every hook: a run that fails (exit 3), one cancelled, then stop."""
    plugin = AllHooks(sqlite_api)
    agent = make_agent([plugin], name="lifecycle")
    thread = make_agent.start(agent)
    wait_until(lambda: "heartbeat" in plugin.names())

    failing = create_run(sqlite_api)
    agent.poke()
    wait_for_state(sqlite_api, failing["id"], "Failed")

    cancelled = create_run(sqlite_api)
    agent.poke()
    wait_for_state(sqlite_api, cancelled["id"], "Running")
    sqlite_api.cancel_flow_run(cancelled["id"])
    wait_for_state(sqlite_api, cancelled["id"], "Cancelled")

    agent.stop()
    thread.join(10)
    assert agent.name not in make_agent.errors
    return plugin


def test_every_hook_is_called_in_lifecycle_order(lifecycle: AllHooks) -> None:
    names = lifecycle.names()

    assert names[:6] == [
        "settings_schema",
        "run_config_schema",
        "plugin_settings_schema",
        "on_startup",
        "preflight",
        "list_deployments",
    ]
    # The API connection and registration happen between the schemas and on_startup.
    assert lifecycle.registered_at == {
        "settings_schema": False,
        "run_config_schema": False,
        "plugin_settings_schema": False,
        "on_startup": True,
    }
    # Run events are delivered on their own thread: their place among the others is not fixed.
    assert first_occurrences([name for name in names if name != "flow_run_state_changed"]) == [
        "settings_schema",
        "run_config_schema",
        "plugin_settings_schema",
        "on_startup",
        "preflight",
        "list_deployments",
        "heartbeat",
        "deploy_flow",
        "flow_run_env",
        "check_deployment",
        "deployment_logs",
        "cancel_deployment",
        "on_shutdown",
    ]
    assert sorted(set(names)) == HOOK_NAMES  # a new hook must be added to this test
    assert names[-1] == "on_shutdown"  # after the last heartbeat too
    for once in (
        "settings_schema",
        "run_config_schema",
        "plugin_settings_schema",
        "on_startup",
        "preflight",
        "list_deployments",
        "on_shutdown",
    ):
        assert names.count(once) == 1, once
    assert names.count("deploy_flow") == 2
    assert names.count("flow_run_env") == 2
    assert names.count("deployment_logs") == 1
    assert names.count("cancel_deployment") == 1


def test_hooks_run_on_the_threads_their_specs_name(lifecycle: AllHooks) -> None:
    threads: dict[str, set[str]] = {}
    for hook, thread in lifecycle.calls:
        threads.setdefault(hook, set()).add(thread.split("-")[0])

    main = {"agent"}  # the thread that called Agent.start() (in production, the main thread)
    assert threads["settings_schema"] == main
    assert threads["run_config_schema"] == main
    assert threads["plugin_settings_schema"] == main
    assert threads["on_startup"] == main
    assert threads["preflight"] == main
    assert threads["list_deployments"] == main
    assert threads["on_shutdown"] == main
    assert threads["deploy_flow"] == {"deploy"}
    assert threads["flow_run_env"] == {"deploy"}
    assert threads["check_deployment"] == {"monitor"}
    assert threads["deployment_logs"] == {"monitor"}
    assert threads["heartbeat"] == {"heartbeat"}
    assert threads["flow_run_state_changed"] == {"run"}  # the run-events thread


def test_cancel_deployment_runs_on_a_thread_of_its_own(lifecycle: AllHooks) -> None:
    (thread,) = {thread for hook, thread in lifecycle.calls if hook == "cancel_deployment"}
    assert thread.startswith("cancel-")


# --- start-up failures -----------------------------------------------------------------------


class FailingStartup(Backend):
    def __init__(self, record: list[str]) -> None:
        super().__init__()
        self.record = record

    @hookimpl
    def on_startup(self, agent: Any) -> None:
        self.record.append("on_startup")
        raise StartupError("the frobnicator is not configured: set backends.x.frob")

    @hookimpl
    def on_shutdown(self, agent: Any) -> None:
        self.record.append("on_shutdown")


def start_failing(make_agent) -> tuple[Any, list[str], BaseException | None]:
    """Start an agent whose on_startup raises: (agent, hooks called, what start() raised)."""
    record: list[str] = []
    agent = make_agent([FailingStartup(record)])
    make_agent.start(agent).join(10)
    return agent, record, make_agent.errors.get(agent.name)


def test_a_raising_on_startup_hook_aborts_start_before_polling(make_agent) -> None:
    agent, record, error = start_failing(make_agent)

    assert error is not None
    assert record[0] == "on_startup"
    assert agent.polls == 0


def test_a_raising_on_startup_hook_aborts_start_with_its_message(make_agent) -> None:
    _, _, error = start_failing(make_agent)

    assert isinstance(error, StartupError)
    assert "the frobnicator is not configured" in str(error)


def test_on_shutdown_still_runs_after_a_failed_on_startup(make_agent) -> None:
    _, record, _ = start_failing(make_agent)

    assert record == ["on_startup", "on_shutdown"]


def test_a_backend_without_deploy_flow_cannot_start(make_agent) -> None:
    class NoDeploy:
        name = "x"

        @hookimpl
        def heartbeat(self, agent: Any) -> None: ...

    agent = make_agent([NoDeploy()])

    with pytest.raises(StartupError, match="does not implement deploy_flow"):
        agent.load_backend_contract()


# --- validation of hook implementations ------------------------------------------------------


def test_a_hookimpl_of_a_hook_that_does_not_exist_is_a_plugin_error() -> None:
    class Typo(Backend):
        @hookimpl
        def deploy_flows(self, flow_run: FlowRun) -> str:  # sic: the seed's name, not the hook's
            return "never"

    with pytest.raises(PluginError, match="deploy_flows"):
        get_plugin_manager("x", load_entrypoints=False, plugins=[Typo()])


def test_a_hookimpl_with_an_argument_the_spec_lacks_is_a_plugin_error() -> None:
    class WrongArgs:
        name = "x"

        @hookimpl
        def deploy_flow(self, flow_run: FlowRun, platform: str) -> str:
            return "never"

    with pytest.raises((PluginError, pluggy.PluginValidationError), match="platform"):
        get_plugin_manager("x", load_entrypoints=False, plugins=[WrongArgs()])


def test_hookimpl_is_the_public_marker_of_the_agent_project() -> None:
    import agent_core

    assert "hookimpl" in agent_core.__all__
    assert hookimpl.project_name == hookspecs.PROJECT_NAME == "agent"
