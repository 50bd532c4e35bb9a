"""The backend conformance suite: what every ``agent-plugin-*`` backend must do, run for real.

A backend's test suite subclasses :class:`BackendConformance` and says how to express a few
workloads on its platform::

    from agent_core.testing.conformance import BackendConformance

    class TestLocalConformance(BackendConformance):
        backend = "local"
        capabilities = frozenset({"cancel", "reattach", "missing"})

        @pytest.fixture
        def backend_settings(self, tmp_path):
            return {"work_dir": str(tmp_path / "runs")}

        def deploy_error_run_config(self):
            return {"type": "local", "working_dir": "/nonexistent"}

        def remove_workload(self, deployment, backend_settings): ...

Each test starts a real API server (SQLite, loopback) and real agents with the installed
backend, creates runs through the API and checks the states and logs that come out.
Capabilities a backend does not claim are skipped with a reason.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent_core.client import APIClient
from agent_core.models import Deployment
from agent_core.testing.harness import AgentThread, history_types, wait_for_final, wait_for_state, wait_until
from agent_core.testing.servers import APIServer

CAPABILITIES = frozenset({"cancel", "reattach", "missing", "exit_codes"})


def requires(capability: str) -> pytest.MarkDecorator:
    return pytest.mark.agent_capability(capability)


class BackendConformance:
    """Subclass as ``TestXConformance`` and set ``backend``; override the workload methods."""

    backend: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[str]] = frozenset({"exit_codes"})
    #: seconds a workload may take to start and finish on this platform
    timeout: ClassVar[float] = 30.0
    cancel_grace_seconds: ClassVar[float] = 3.0

    # --- what a backend says about itself -----------------------------------------------

    def command(self, kind: str, **kw: Any) -> str:
        """The flow command for a workload kind: ``succeed``, ``exit`` (code=N), ``sleep`` (seconds=S)."""
        if kind == "succeed":
            return "sh -c 'echo conformance-ok'"
        if kind == "exit":
            return f"sh -c 'echo conformance-failing >&2; exit {kw['code']}'"
        if kind == "sleep":
            return f"sh -c 'sleep {kw['seconds']}; echo conformance-slept'"
        raise ValueError(kind)

    def run_config(self) -> dict[str, Any] | None:
        """The run config every conformance run gets (e.g. the image to use)."""
        return None

    def deploy_error_run_config(self) -> dict[str, Any]:
        """A run config with which ``deploy_flow`` must fail (bad image, missing directory...)."""
        raise NotImplementedError

    def remove_workload(self, deployment: Deployment, backend_settings: dict[str, Any]) -> None:
        """Make the workload vanish from the platform behind the agent's back (capability ``missing``)."""
        raise NotImplementedError

    @pytest.fixture
    def backend_settings(self, tmp_path: Path) -> dict[str, Any]:
        return {}

    # --- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _capabilities(self, request: pytest.FixtureRequest) -> None:
        for marker in request.node.iter_markers("agent_capability"):
            if marker.args[0] not in self.capabilities:
                pytest.skip(f"backend {self.backend!r} does not claim capability {marker.args[0]!r}")

    @pytest.fixture
    def conformance_api(self, tmp_path: Path) -> Iterator[APIServer]:
        with APIServer(f"sqlite:///{tmp_path / 'conformance.db'}") as server:
            yield server

    @pytest.fixture
    def client(self, conformance_api: APIServer) -> APIClient:
        return conformance_api.client()

    def agent(self, server: APIServer, backend_settings: dict[str, Any], name: str = "conformance") -> AgentThread:
        return AgentThread(
            server.url,
            self.backend,
            name=name,
            backend_settings=backend_settings,
            cancel_grace_seconds=self.cancel_grace_seconds,
        )

    def create_run(self, client: APIClient, command: str, run_config: dict[str, Any] | None = None) -> dict[str, Any]:
        flow = client.register_flow(f"conformance-{abs(hash(command)) % 10**8}", command)
        return client.create_flow_run(flow_id=flow["id"], run_config=run_config or self.run_config())

    def logs_text(self, client: APIClient, run_id: str) -> str:
        items, _ = client.read_logs(run_id)
        return "\n".join(item["message"] for item in items)

    # --- the suite --------------------------------------------------------------------------

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

    @requires("missing")
    def test_a_workload_that_vanishes_marks_the_run_failed(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("sleep", seconds=60))
        with self.agent(conformance_api, backend_settings):
            running = wait_for_state(client, run["id"], ["Running"], self.timeout)
            self.remove_workload(Deployment.from_dict(running["deployment"]), backend_settings)
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Failed"

    @requires("cancel")
    def test_cancel_stops_the_workload_within_the_grace_period(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("sleep", seconds=300))
        with self.agent(conformance_api, backend_settings):
            wait_for_state(client, run["id"], ["Running"], self.timeout)
            asked = time.monotonic()
            client.cancel_flow_run(run["id"])
            final = wait_for_final(client, run["id"], self.cancel_grace_seconds + 10)
            took = time.monotonic() - asked
        assert final["state"]["type"] == "Cancelled"
        assert took < self.cancel_grace_seconds + 5

    @requires("reattach")
    def test_a_restarted_agent_reattaches_instead_of_deploying_again(self, conformance_api, client, backend_settings):
        run = self.create_run(client, self.command("sleep", seconds=3))
        first = self.agent(conformance_api, backend_settings, name="conformance-restart").start()
        wait_for_state(client, run["id"], ["Running"], self.timeout)
        first.stop()  # a graceful stop leaves workloads running, as a crash would
        assert client.get_flow_run(run["id"])["state"]["type"] == "Running"
        with self.agent(conformance_api, backend_settings, name="conformance-restart"):
            final = wait_for_final(client, run["id"], self.timeout)
        assert final["state"]["type"] == "Success"
        assert history_types(client, run["id"]).count("Submitted") == 1

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
