"""The backend conformance kit: what every ``agent-plugin-*`` backend must do, run for real.

A backend's test suite subclasses :class:`BackendConformance`, names the backend, declares
**every** capability either claimed (tested) or not claimed (with the reason), and gives the
kit a few probes of its platform::

    from agent_core.testing.conformance import BackendConformance

    class TestLocalConformance(BackendConformance):
        backend = "local"
        capabilities = frozenset(
            {"exit_codes", "output", "cancel", "cancel_output", "reattach", "missing", "idempotent_deploy"}
        )
        not_claimed = {}

        @pytest.fixture
        def backend_settings(self, tmp_path):
            return {"work_dir": str(tmp_path / "runs")}

        def deploy_error_run_config(self):
            return {"type": "local", "working_dir": "/nonexistent"}

        def workload_alive(self, deployment, backend_settings): ...   # asks the platform
        def workload_count(self, flow_run_id, backend_settings): ...  # asks the platform
        def remove_workload(self, deployment, backend_settings): ...

Each test starts a real API server (SQLite, loopback) and real agents with the backend,
creates runs through the API and checks what comes out: states, logs, and what the platform
itself says (the probes), never only what a hook returned. A capability in ``not_claimed`` is
skipped with its reason, and listed at the end of the pytest run ("capabilities not tested").
``docs/conformance.md`` describes every check.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent_core.client import APIClient
from agent_core.models import Deployment, FlowRun
from agent_core.runconfig import resolve_run_config
from agent_core.testing.harness import (
    AgentThread,
    history_types,
    run_log_messages,
    wait_for_final,
    wait_for_state,
    wait_until,
)
from agent_core.testing.servers import APIServer

#: every capability the kit can check, and what claiming it promises
CAPABILITIES: Mapping[str, str] = {
    "exit_codes": "a non-zero exit marks the run Failed with the code, and the output tail is attached",
    "output": "lines the workload writes reach the run's logs, in order",
    "cancel": "cancelling a run stops its workload on the platform within the grace period",
    "cancel_output": "lines the workload writes while it is being cancelled reach the run's logs too",
    "reattach": "a restarted agent finds its workloads again (list_deployments) and re-attaches to them",
    "missing": "a workload that vanishes from the platform marks its run Failed",
    "idempotent_deploy": "a second deploy_flow for the same attempt starts no second workload",
}

#: the probes (methods of the test class) each capability needs
PROBES: Mapping[str, tuple[str, ...]] = {
    "cancel": ("workload_alive",),
    "cancel_output": ("workload_alive",),
    "reattach": ("workload_count",),
    "missing": ("remove_workload",),
    "idempotent_deploy": ("workload_count",),
}

SKIP_PREFIX = "conformance: capability"
HELD_LABEL = "conformance-held"  # a label no conformance agent has: its runs are claimed by hand


def requires(*capabilities: str) -> pytest.MarkDecorator:
    """Mark a conformance test as needing ``capabilities`` (skipped, and reported, if not claimed)."""
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}; the kit knows {sorted(CAPABILITIES)}")
    return pytest.mark.agent_capability(*capabilities)


class ConformanceDeclarationError(Exception):
    """The test class does not declare what the kit needs (capabilities, probes)."""


def declaration_problems(cls: type[BackendConformance]) -> list[str]:
    """What is wrong with a conformance class's declarations; empty when it may run."""
    problems = []
    if not cls.backend:
        problems.append("set backend = 'NAME' (the agent.backends entry point to test, or the run-config type)")
    claimed = getattr(cls, "capabilities", None)
    declined = getattr(cls, "not_claimed", None)
    if claimed is None or declined is None:
        problems.append(
            "declare capabilities = frozenset({...}) and not_claimed = {capability: reason} "
            f"between them naming every capability of the kit: {', '.join(CAPABILITIES)}"
        )
        return problems
    unknown = (set(claimed) | set(declined)) - set(CAPABILITIES)
    if unknown:
        problems.append(f"unknown capabilities {sorted(unknown)}; the kit knows {', '.join(CAPABILITIES)}")
    both = set(claimed) & set(declined)
    if both:
        problems.append(f"{sorted(both)} both claimed and in not_claimed")
    undeclared = [name for name in CAPABILITIES if name not in claimed and name not in declined]
    if undeclared:
        problems.append(
            f"capabilities {undeclared} are neither claimed nor in not_claimed (with the reason): "
            "the kit never skips a check silently"
        )
    for name, reason in declined.items():
        if not str(reason).strip():
            problems.append(f"not_claimed[{name!r}] needs a reason")
    for capability in claimed:
        for probe in PROBES.get(capability, ()):
            if getattr(cls, probe) is getattr(BackendConformance, probe):
                problems.append(f"capability {capability!r} needs the platform probe {probe}() of the test class")
    return problems


class BackendConformance:
    """Subclass as ``TestXConformance``; set ``backend``, ``capabilities``, ``not_claimed``; give the probes."""

    #: the backend under test (its ``agent.backends`` entry-point name)
    backend: ClassVar[str] = ""
    #: capabilities claimed, each tested (see :data:`CAPABILITIES`); no default, on purpose
    capabilities: ClassVar[frozenset[str]]
    #: capability -> why it is not claimed (or cannot be shown here); no default, on purpose
    not_claimed: ClassVar[Mapping[str, str]]
    #: seconds a workload may take to start and finish on this platform
    timeout: ClassVar[float] = 30.0
    cancel_grace_seconds: ClassVar[float] = 3.0
    #: seconds the platform may take to show a stopped workload as stopped (probe ``workload_alive``)
    settle_seconds: ClassVar[float] = 5.0

    # --- what a backend says about itself -----------------------------------------------

    @classmethod
    def backend_plugins(cls) -> list[Any]:
        """Plugin objects to test instead of the installed entry point (in-test backends)."""
        return []

    def command(self, kind: str, **kw: Any) -> str:
        """The flow command for a workload kind (POSIX ``sh``; override for other platforms).

        ``succeed``; ``exit`` (``code``); ``sleep`` (``seconds``); ``print`` (``lines``: print
        each, then exit 0); ``trap`` (print ``ready``, run until SIGTERM, then print ``term`` and
        exit 143; it gives up after 2 minutes, so a backend failing the kit leaks nothing for long).
        """
        if kind == "succeed":
            return "sh -c 'echo conformance-ok'"
        if kind == "exit":
            return f"sh -c 'echo conformance-failing >&2; exit {kw['code']}'"
        if kind == "sleep":
            return f"sh -c 'sleep {kw['seconds']}; echo conformance-slept'"
        if kind == "print":
            return "sh -c '" + "; ".join(f"echo {line}" for line in kw["lines"]) + "'"
        if kind == "trap":
            return (
                f'sh -c \'trap "echo {kw["term"]}; exit 143" TERM; echo {kw["ready"]}; '
                "i=0; while [ $i -lt 600 ]; do sleep 0.2; i=$((i+1)); done'"
            )
        raise ValueError(kind)

    def run_config(self) -> dict[str, Any] | None:
        """The run config every conformance run gets (e.g. the image to use)."""
        return None

    def deploy_error_run_config(self) -> dict[str, Any]:
        """A run config with which ``deploy_flow`` must fail (bad image, missing directory...)."""
        raise NotImplementedError(f"{type(self).__name__} must implement deploy_error_run_config()")

    def workload_alive(self, deployment: Deployment, backend_settings: dict[str, Any]) -> bool:
        """Probe (``cancel``): whether the platform still runs this workload (ask the platform, not the backend)."""
        raise NotImplementedError

    def workload_count(self, flow_run_id: str, backend_settings: dict[str, Any]) -> int:
        """Probe (``reattach``, ``idempotent_deploy``): how many workloads the platform has started for
        the run, running or finished (those not yet cleaned away)."""
        raise NotImplementedError

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        """Make the workload vanish from the platform behind the agent's back (``missing``)."""
        raise NotImplementedError

    @pytest.fixture
    def backend_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {}

    # --- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest) -> None:
        problems = declaration_problems(type(self))
        if problems:
            pytest.fail(f"{type(self).__name__}: " + "; ".join(problems), pytrace=False)
        for marker in request.node.iter_markers("agent_capability"):
            for capability in marker.args:
                if capability not in self.capabilities:
                    reason = self.not_claimed[capability]
                    pytest.skip(f"{SKIP_PREFIX} {capability!r} not claimed by backend {self.backend!r}: {reason}")

    @pytest.fixture
    def conformance_api(self, tmp_path: Path) -> Iterator[APIServer]:
        with APIServer(f"sqlite:///{tmp_path / 'conformance.db'}") as server:
            yield server

    @pytest.fixture
    def client(self, conformance_api: APIServer) -> APIClient:
        return conformance_api.client()

    def agent(self, server: APIServer, backend_settings: dict[str, Any], name: str = "conformance") -> AgentThread:
        plugins = self.backend_plugins()
        return AgentThread(
            server.url,
            self.backend,
            name=name,
            backend_settings=backend_settings,
            cancel_grace_seconds=self.cancel_grace_seconds,
            plugins=plugins,
            load_entrypoints=not plugins,
        )

    def create_run(
        self, client: APIClient, command: str, run_config: dict[str, Any] | None = None, **kw: Any
    ) -> dict[str, Any]:
        flow = client.register_flow(f"conformance-{abs(hash(command)) % 10**8}", command)
        return client.create_flow_run(flow_id=flow["id"], run_config=run_config or self.run_config(), **kw)

    def logs_text(self, client: APIClient, run_id: str) -> str:
        return "\n".join(run_log_messages(client, run_id))

    def wait_for_log_line(self, client: APIClient, run_id: str, line: str, timeout: float) -> bool:
        return bool(wait_until(lambda: line in run_log_messages(client, run_id), timeout, interval=0.2))

    # --- always: deploying ------------------------------------------------------------------

    def test_deploy_success_marks_the_run_success(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("succeed"))
        with self.agent(conformance_api, backend_settings):
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Success", final["state"]
        assert "Submitted for execution" in self.logs_text(client, run["id"])

    def test_deploy_error_marks_the_run_failed_with_the_message_in_its_logs(
        self, conformance_api, client, backend_settings
    ):
        run = self.create_run(client, self.command("succeed"), self.deploy_error_run_config())
        with self.agent(conformance_api, backend_settings):
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Failed"
        assert final["state"]["message"]
        assert final["state"]["message"].splitlines()[0] in self.logs_text(client, run["id"])

    def test_two_agents_racing_deploy_each_run_exactly_once(self, conformance_api, client, backend_settings):
        runs = [self.create_run(client, self.command("succeed")) for _ in range(8)]
        with (
            self.agent(conformance_api, backend_settings, name="conformance-a"),
            self.agent(conformance_api, backend_settings, name="conformance-b"),
        ):
            finals = [wait_for_final(client, r["id"], self.timeout) for r in runs]
        assert [f["state"]["type"] for f in finals] == ["Success"] * len(runs)
        for r in runs:
            assert history_types(client, r["id"]).count("Submitted") == 1

    def test_runs_are_left_scheduled_for_other_agents_when_none_matches(
        self, conformance_api, client, backend_settings
    ):
        flow = client.register_flow("conformance-labelled", self.command("succeed"))
        run = client.create_flow_run(flow_id=flow["id"], labels=["elsewhere"], run_config=self.run_config())
        with self.agent(conformance_api, backend_settings) as agent:
            wait_until(lambda: agent.agent.polls >= 3, 10)
        assert client.get_flow_run(run["id"])["state"]["type"] == "Scheduled"

    # --- exit codes -------------------------------------------------------------------------

    @requires("exit_codes")
    def test_a_non_zero_exit_marks_the_run_failed_with_the_code(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("exit", code=3))
        with self.agent(conformance_api, backend_settings):
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Failed"
        assert "code 3" in final["state"]["message"]

    @requires("exit_codes")
    def test_the_output_tail_of_a_failed_run_is_attached(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("exit", code=4))
        with self.agent(conformance_api, backend_settings):
            final = wait_for_final(client, run["id"], self.timeout)
        assert "conformance-failing" in final["state"]["message"]

    # --- output -----------------------------------------------------------------------------

    @requires("output")
    def test_output_written_by_the_workload_reaches_the_run_logs(self, conformance_api, client, backend_settings):
        lines = [f"conformance-output-{n}" for n in range(1, 4)]
        run = self.create_run(client, self.command("print", lines=lines))
        with self.agent(conformance_api, backend_settings):
            final = wait_for_final(client, run["id"], self.timeout)
            shipped = all(self.wait_for_log_line(client, run["id"], line, 10) for line in lines)
        assert final["state"]["type"] == "Success", final["state"]
        messages = run_log_messages(client, run["id"])
        missing = [line for line in lines if line not in messages]
        assert shipped and not missing, (
            f"output not shipped: the workload printed {lines} but the run's logs lack {missing} "
            "(ship the workload's output with agent.write_output)"
        )
        assert [m for m in messages if m in lines] == lines, f"output out of order in the run's logs: {messages}"

    @requires("cancel_output")
    def test_output_written_while_cancelling_reaches_the_run_logs(self, conformance_api, client, backend_settings):
        ready, term = "conformance-trap-ready", "conformance-trap-term"
        run = self.create_run(client, self.command("trap", ready=ready, term=term))
        with self.agent(conformance_api, backend_settings):
            wait_for_state(client, run["id"], ["Running"], self.timeout)
            assert self.wait_for_log_line(client, run["id"], ready, self.timeout), (
                f"output not shipped while the workload runs: {ready!r} never reached the run's logs"
            )
            client.cancel_flow_run(run["id"])
            final = wait_for_final(client, run["id"], self.cancel_grace_seconds + 20)
            shipped = self.wait_for_log_line(client, run["id"], term, 10)
        assert final["state"]["type"] == "Cancelled", final["state"]
        assert shipped, (
            f"output written while cancelling was lost: the workload printed {term!r} on SIGTERM, "
            "but the run's logs never got it (ship the last output before cancel_deployment returns)"
        )

    # --- cancel -----------------------------------------------------------------------------

    @requires("cancel")
    def test_cancel_stops_the_workload_on_the_platform(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("sleep", seconds=300))
        with self.agent(conformance_api, backend_settings):
            running = wait_for_state(client, run["id"], ["Running"], self.timeout)
            deployment = Deployment.from_dict(running["deployment"])
            assert self.workload_alive(deployment, backend_settings), (
                f"the probe workload_alive() says the running workload {deployment} is not alive: fix the probe"
            )
            asked = time.monotonic()
            client.cancel_flow_run(run["id"])
            final = wait_for_final(client, run["id"], self.cancel_grace_seconds + 20)
            took = time.monotonic() - asked
            stopped = wait_until(lambda: not self.workload_alive(deployment, backend_settings), self.settle_seconds)
        assert final["state"]["type"] == "Cancelled", final["state"]
        assert stopped, (
            f"cancel stops nothing: the run is Cancelled (cancel_deployment said the workload was stopped), "
            f"but the platform still runs {deployment} {self.settle_seconds:g}s later"
        )
        assert took < self.cancel_grace_seconds + 15, f"cancelling took {took:.1f}s"

    # --- vanished workloads -----------------------------------------------------------------

    @requires("missing")
    def test_a_workload_that_vanishes_marks_the_run_failed(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("sleep", seconds=60))
        with self.agent(conformance_api, backend_settings):
            running = wait_for_state(client, run["id"], ["Running"], self.timeout)
            self.remove_workload(Deployment.from_dict(running["deployment"]), backend_settings)
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Failed"

    # --- restarts and repeated launches ---------------------------------------------------

    @requires("reattach")
    def test_a_restarted_agent_reattaches_instead_of_deploying_again(self, conformance_api, client, backend_settings):
        # Long enough to outlast a stop and a start on a loaded machine: the restarted agent
        # must find the workload still running.
        run = self.create_run(client, self.command("sleep", seconds=20))
        first = self.agent(conformance_api, backend_settings, name="conformance-restart").start()
        wait_for_state(client, run["id"], ["Running"], self.timeout)
        first.stop()  # a graceful stop leaves workloads running, as a crash would
        assert client.get_flow_run(run["id"])["state"]["type"] == "Running"
        with self.agent(conformance_api, backend_settings, name="conformance-restart") as second:
            live = second.agent.pm.hook.list_deployments(agent=second.agent) or []
            count = self.workload_count(run["id"], backend_settings)  # while it still runs
            final = wait_for_final(client, run["id"], self.timeout)
        found = [(item.flow_run_id, item.attempt) for item in live]
        assert (run["id"], 1) in found, (
            f"list_deployments of the restarted agent does not report the still-running workload of run "
            f"{run['id']} attempt 1 (it reported {found}): a restarted agent cannot find its workloads"
        )
        assert final["state"]["type"] == "Success", final["state"]
        assert history_types(client, run["id"]).count("Submitted") == 1
        assert count == 1, f"the restarted agent started the workload again: {count} workloads for one attempt"

    @requires("idempotent_deploy")
    def test_a_second_deploy_of_the_same_attempt_starts_no_second_workload(
        self, conformance_api, client, backend_settings
    ):
        data = self.create_run(client, self.command("sleep", seconds=3), labels=[HELD_LABEL])
        with self.agent(conformance_api, backend_settings) as thread:
            agent = thread.agent
            claimed = agent.client.set_flow_run_state(data["id"], version=data["version"], state="Submitted")
            run = FlowRun.from_api(claimed)
            run_config = resolve_run_config(run.run_config, agent.backend, agent.run_config_schema)
            first = agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)
            try:
                second = agent.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=agent)
            except Exception as exc:  # refusing the repeat is fine too
                second = exc
            time.sleep(0.5)  # a platform may show a new workload a moment after the call
            count = self.workload_count(run.id, backend_settings)
        assert first is not None
        assert count == 1, (
            f"double launch: a second deploy_flow for the same attempt started another workload "
            f"({count} workloads for run {run.id} attempt {run.attempt}; first {first}, second {second}); "
            "name or tag the workload with flow_run.key and return the existing one"
        )
