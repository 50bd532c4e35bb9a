"""Following tasks: one batched ``describe_tasks`` per monitor tick, and what a stopped task means.

The monitor asks ``check_deployment`` about each of its runs in turn, every tick. The
:class:`TaskTracker` answers all of them from one snapshot: the first run of a tick asks again
about a task whose snapshot it has already seen, which refreshes the snapshot of *every*
watched task at once (``describe_tasks``, up to 100 tasks a call, per cluster); the other runs
of that tick get their task's entry of the fresh snapshot. So the calls per tick do not grow
with the number of runs (one per 100 tasks), and no timing is assumed about the tick.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from agent_plugin_ecs.aws import NO_CREDENTIALS, UNREACHABLE, AwsClients, AwsUnavailable, explain

DESCRIBE_BATCH = 100
# A task ECS has never described, this soon after its launch, is not missing yet: the API is
# eventually consistent. One that was described before and is now unknown is missing at once.
MISSING_GRACE = 60.0
# A watched task nobody asked about for this long is dropped from the snapshot (its run went away).
FORGET_AFTER = 300.0

PENDING_STATUSES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})


@dataclass(frozen=True)
class Missing:
    """ECS does not know the task (a ``MISSING`` failure, or no answer for it at all)."""

    reason: str = "MISSING"


TaskView = dict[str, Any]


class TaskTracker:
    def __init__(self, clients: AwsClients, clock: Callable[[], float] = time.monotonic) -> None:
        self.clients = clients
        self._clock = clock
        self._lock = threading.Lock()
        self._watched: dict[str, str] = {}  # task ARN -> cluster ("" = the default cluster)
        self._asked: dict[str, float] = {}
        self._snapshot: dict[str, TaskView | Missing] = {}
        self._served: dict[str, int] = {}
        self._seen: set[str] = set()  # tasks ECS has described at least once
        self.generation = 0
        self.describe_calls = 0

    def watch(self, task_arn: str, cluster: str) -> None:
        with self._lock:
            self._watched[task_arn] = cluster
            self._asked[task_arn] = self._clock()

    def forget(self, task_arn: str) -> None:
        with self._lock:
            for table in (self._watched, self._asked, self._snapshot, self._served):
                table.pop(task_arn, None)
            self._seen.discard(task_arn)

    def seen(self, task_arn: str) -> bool:
        """Whether ECS has described the task before (a task never seen may just be new)."""
        with self._lock:
            return task_arn in self._seen

    @property
    def watched(self) -> int:
        with self._lock:
            return len(self._watched)

    def status(self, task_arn: str, cluster: str) -> TaskView | Missing | None:
        """The task as of this tick's snapshot; None when it has not been described yet.

        :raise AwsUnavailable: the refresh could not reach ECS.
        """
        with self._lock:
            now = self._clock()
            self._watched.setdefault(task_arn, cluster)
            self._asked[task_arn] = now
            served = self._served.get(task_arn)
            if task_arn in self._snapshot and served != self.generation:
                self._served[task_arn] = self.generation
                return self._snapshot[task_arn]
            if served is None:
                # Just watched: answer "not known yet" now, described with everything next tick.
                self._served[task_arn] = self.generation
                return None
            self._refresh(now)
            self._served[task_arn] = self.generation
            return self._snapshot.get(task_arn)

    def _refresh(self, now: float) -> None:
        for arn in [arn for arn, at in self._asked.items() if now - at > FORGET_AFTER]:
            for table in (self._watched, self._asked, self._snapshot, self._served):
                table.pop(arn, None)
            self._seen.discard(arn)
        by_cluster: dict[str, list[str]] = {}
        for arn, cluster in self._watched.items():
            by_cluster.setdefault(cluster, []).append(arn)
        snapshot: dict[str, TaskView | Missing] = {}
        for cluster, arns in by_cluster.items():
            for start in range(0, len(arns), DESCRIBE_BATCH):
                chunk = arns[start : start + DESCRIBE_BATCH]
                snapshot.update(describe(self.clients, cluster, chunk))
                self.describe_calls += 1
        self._snapshot = snapshot
        self._seen.update(arn for arn, view in snapshot.items() if not isinstance(view, Missing))
        self.generation += 1


def describe(clients: AwsClients, cluster: str, arns: list[str]) -> dict[str, TaskView | Missing]:
    """Every task of ``arns`` (at most 100, one cluster) as ECS describes it, or :class:`Missing`."""
    kwargs: dict[str, Any] = {"tasks": arns}
    if cluster:
        kwargs["cluster"] = cluster
    try:
        answer = clients.ecs.describe_tasks(**kwargs)
    except botocore.exceptions.ClientError as exc:
        raise AwsUnavailable(f"cannot describe ECS tasks: {explain(exc)}") from None
    except (*UNREACHABLE, *NO_CREDENTIALS) as exc:
        raise AwsUnavailable(f"cannot reach ECS: {explain(exc)}") from None
    out: dict[str, TaskView | Missing] = {}
    for task in answer.get("tasks") or []:
        out[task["taskArn"]] = task
    for failure in answer.get("failures") or []:
        arn = failure.get("arn", "")
        if arn:
            out[arn] = Missing(" ".join(filter(None, [failure.get("reason"), failure.get("detail")])) or "MISSING")
    for arn in arns:
        if arn not in out:
            # Matched by task id when ECS answers with another ARN format.
            match = next(
                (task for known, task in out.items() if known.rsplit("/", 1)[-1] == arn.rsplit("/", 1)[-1]), None
            )
            out[arn] = match if match is not None else Missing("not in the describe_tasks answer")
    return out


# --- what a stopped task means -----------------------------------------------------------------

STOP_CODES = {
    "TaskFailedToStart": "the task failed to start",
    "EssentialContainerExited": "an essential container exited",
    "UserInitiated": "stopped through the ECS API",
    "ServiceSchedulerInitiated": "stopped by the service scheduler",
    "SpotInterruption": "Fargate Spot capacity was reclaimed",
    "TerminationNotice": "the host was terminated",
    "InfrastructureHealth": "AWS infrastructure was unhealthy",
}
# Reasons AWS documents as transient (a new attempt may well succeed), matched in the stop and
# container reasons: image pull timeouts, ENI attachment failures, interruptions.
TRANSIENT_REASONS = (
    ("CannotPullContainerError", ("timeout", "timed out", "deadline exceeded", "TooManyRequests"), "image pull failed"),
    ("ResourceInitializationError", ("timeout", "timed out", "deadline exceeded"), "task resources timed out"),
    ("network interface", ("timeout", "provisioning", "failed"), "ENI attachment failed"),
    ("ENI", ("fail", "timeout"), "ENI attachment failed"),
    ("Timeout waiting for network interface", (), "ENI attachment timed out"),
    ("Your Spot Task was interrupted", (), "spot interruption"),
    ("Host EC2", ("terminated", "stopped"), "the EC2 host went away"),
    ("capacity is unavailable", (), "no capacity"),
)  # fmt: skip
TRANSIENT_STOP_CODES = {"SpotInterruption": "spot interruption", "TerminationNotice": "host terminated"}
UNKNOWN_EXIT = -1


def transient_reason(task: TaskView) -> str | None:
    """What makes this stop transient, or None."""
    code = task.get("stopCode", "")
    if code in TRANSIENT_STOP_CODES:
        return TRANSIENT_STOP_CODES[code]
    texts = [str(task.get("stoppedReason", ""))] + [str(c.get("reason", "")) for c in task.get("containers") or []]
    for text in texts:
        lowered = text.lower()
        for marker, qualifiers, name in TRANSIENT_REASONS:
            if marker.lower() in lowered and (not qualifiers or any(q.lower() in lowered for q in qualifiers)):
                return name
    return None


def container_of(task: TaskView, name: str) -> dict[str, Any] | None:
    containers = task.get("containers") or []
    found = next((c for c in containers if c.get("name") == name), None)
    if found is None and len(containers) == 1 and not containers[0].get("name"):
        return containers[0]  # stand-ins that describe one unnamed container
    return found


def stopped_outcome(task: TaskView, container: str) -> tuple[int, str]:
    """The exit code of a STOPPED task's flow container, and why it stopped (for the run's message)."""
    flow = container_of(task, container)
    code = flow.get("exitCode") if flow is not None else None
    parts = []
    stop_code = task.get("stopCode")
    if stop_code:
        parts.append(f"stop code {stop_code}: {STOP_CODES.get(stop_code, stop_code)}")
    if task.get("stoppedReason"):
        parts.append(str(task["stoppedReason"]))
    if flow is not None and flow.get("reason"):
        parts.append(f"container {container}: {flow['reason']}")
    if code is None:
        parts.insert(0, f"the {container!r} container reported no exit code (it may never have started)")
    transient = transient_reason(task)
    if transient:
        parts.append(f"transient ({transient}): a retry may succeed")
    return (int(code) if code is not None else UNKNOWN_EXIT), "; ".join(parts)
