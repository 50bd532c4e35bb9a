"""The values that pass between the API client, the engine and the plugins."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agent_core.states import State

if TYPE_CHECKING:
    import pendulum


def parse_time(value: str | pendulum.DateTime | None) -> pendulum.DateTime | None:
    # Imported here: `import agent_core` (and so `agent --help`) need not load pendulum.
    import pendulum

    if value is None or isinstance(value, pendulum.DateTime):
        return value
    parsed = pendulum.parse(value)
    assert isinstance(parsed, pendulum.DateTime)
    return parsed


@dataclass
class FlowRun:
    """A flow run as the agent sees it: everything a backend needs to deploy it."""

    id: str
    flow_id: str
    flow_name: str
    flow_version: int
    command: str
    parameters: dict[str, Any]
    labels: list[str]
    run_config: dict[str, Any] | None
    scheduled_start_time: pendulum.DateTime
    state: State
    version: int
    attempt: int = 1
    name: str = ""
    agent_id: str | None = None
    deployment: dict[str, Any] | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> FlowRun:
        flow = data.get("flow") or {}
        start = parse_time(data["scheduled_start_time"])
        assert start is not None
        return cls(
            id=data["id"],
            flow_id=data["flow_id"],
            flow_name=flow.get("name", ""),
            flow_version=int(flow.get("version", data.get("flow_version", 1))),
            command=flow.get("command", ""),
            parameters=data.get("parameters") or {},
            labels=list(data.get("labels") or []),
            run_config=data.get("run_config"),
            scheduled_start_time=start,
            state=State(data["state"]["type"]),
            version=int(data["version"]),
            attempt=int(data.get("attempt", 1)),
            name=data.get("name", ""),
            agent_id=data.get("agent_id"),
            deployment=data.get("deployment"),
        )

    @property
    def key(self) -> str:
        """Run id and attempt: what a backend names or tags its platform object with."""
        return f"{self.id}-{self.attempt}"


@dataclass(frozen=True)
class Deployment:
    """What ``deploy_flow`` started: enough to find, watch and stop it again.

    ``platform_id`` is the backend's handle (pid, container id, task ARN); ``info`` is shown to
    people ("container agent-run-... (abc123)"); ``data`` holds backend extras as plain JSON.
    ``running``: the workload is running as ``deploy_flow`` returns (a process started), so the
    agent marks the run Running in the request that records the deployment, instead of at the
    monitor's first ``check_deployment``. Leave it False where the platform may still hold the
    workload back (a task PENDING). It says how the deploy went, so it is not recorded.
    """

    backend: str
    platform_id: str
    info: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    running: bool = False

    def to_dict(self) -> dict[str, Any]:
        """What the API records on the run (``running`` left out)."""
        return {
            "backend": self.backend,
            "platform_id": self.platform_id,
            "info": self.info,
            "data": copy.deepcopy(self.data),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls(
            backend=str(data.get("backend", "")),
            platform_id=str(data.get("platform_id", "")),
            info=str(data.get("info", "")),
            data=dict(data.get("data") or {}),
        )

    def __str__(self) -> str:
        return self.info or f"{self.backend} {self.platform_id}"


StatusKind = Literal["pending", "running", "exited", "missing"]


@dataclass(frozen=True)
class DeploymentStatus:
    """A backend's answer to "how is this workload doing?"."""

    kind: StatusKind
    exit_code: int | None = None
    reason: str = ""

    @classmethod
    def pending(cls, reason: str = "") -> DeploymentStatus:
        return cls("pending", reason=reason)

    @classmethod
    def running(cls) -> DeploymentStatus:
        return cls("running")

    @classmethod
    def exited(cls, code: int, reason: str = "") -> DeploymentStatus:
        return cls("exited", exit_code=code, reason=reason)

    @classmethod
    def missing(cls, reason: str = "") -> DeploymentStatus:
        return cls("missing", reason=reason)


@dataclass(frozen=True)
class CheckResult:
    """One ``preflight`` check: a short name, whether it passed, what was seen, and how to fix a failure."""

    name: str
    ok: bool
    detail: str = ""
    fix: str = ""  # printed by `agent doctor` under a FAIL line: the command or setting that fixes it


@dataclass(frozen=True)
class LiveDeployment:
    """One workload found on the platform by ``list_deployments``."""

    flow_run_id: str
    attempt: int
    deployment: Deployment
