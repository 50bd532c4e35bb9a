"""The ``run_task`` call of a run: its arguments by precedence, and the launch with its retries.

Precedence, each source replacing the one before per key: the agent's run-task template <
the agent's settings < the run config (its ``run_task_kwargs``, then its own fields). In
``overrides``, ``containerOverrides`` are merged by container name (others appended); a launch
type and a capacity-provider strategy exclude each other, the later one replacing the earlier.
The backend then sets what is its own: the definition, one task, ``startedBy``, the tags naming
the run, the ``clientToken``, and the flow container's command and environment.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from agent_core.errors import DeploymentError
from agent_plugin_ecs.aws import (
    NO_CREDENTIALS,
    THROTTLING,
    UNREACHABLE,
    AwsClients,
    AwsUnavailable,
    error_code,
    explain,
)
from agent_plugin_ecs.names import as_tag_list, tag_dict
from agent_plugin_ecs.schemas import EcsRunConfig, EcsSettings

FARGATE_PROVIDERS = frozenset({"FARGATE", "FARGATE_SPOT"})
MAX_OVERRIDES = 8192  # characters of JSON, as ECS counts them
# `failures` reasons of run_task that AWS documents as passing: no room on the cluster right
# now, a disconnected container agent, Fargate capacity, the concurrent-task quota.
TRANSIENT_FAILURES = ("RESOURCE:", "AGENT", "capacity is unavailable", "reached the limit on the number of tasks")
TRANSIENT_ERRORS = frozenset({"ServerException", *THROTTLING})
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 15.0)


@dataclass(frozen=True)
class Placement:
    launch_type: str | None
    strategy: list[dict[str, Any]] | None

    @property
    def fargate(self) -> bool:
        if self.launch_type:
            return self.launch_type == "FARGATE"
        return any(item.get("capacityProvider") in FARGATE_PROVIDERS for item in self.strategy or [])

    def describe(self) -> str:
        if self.launch_type:
            return f"launch type {self.launch_type}"
        items = ", ".join(
            f"{i['capacityProvider']}" + (f" weight {i['weight']}" if "weight" in i else "")
            for i in self.strategy or []
        )
        return f"capacity providers {items or '(the cluster default)'}"


def set_placement(kwargs: dict[str, Any], launch_type: str | None, strategy: list[dict[str, Any]] | None) -> None:
    """Make ``kwargs`` use this launch type or strategy, removing the other one."""
    if launch_type == "FARGATE_SPOT":
        launch_type, strategy = None, [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    if launch_type:
        kwargs["launchType"] = launch_type
        kwargs.pop("capacityProviderStrategy", None)
    elif strategy:
        kwargs["capacityProviderStrategy"] = copy.deepcopy(strategy)
        kwargs.pop("launchType", None)


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: per key, ``overrides`` merged, its ``containerOverrides`` by name."""
    out = copy.deepcopy(base)
    top = copy.deepcopy(top)
    set_placement(out, top.pop("launchType", None), top.pop("capacityProviderStrategy", None))
    overrides = top.pop("overrides", None) or {}
    if "tags" in top:
        out["tags"] = as_tag_list({**tag_dict(out.get("tags")), **tag_dict(top.pop("tags"))})
    out.update(top)
    if overrides:
        merged = out.setdefault("overrides", {})
        containers = overrides.pop("containerOverrides", None) or []
        merged.update(overrides)
        existing = merged.setdefault("containerOverrides", [])
        for entry in containers:
            match = next((e for e in existing if e.get("name") == entry.get("name")), None)
            if match is None:
                existing.append(entry)
            else:
                match.update(entry)
    return out


def resolve(settings: EcsSettings, template: dict[str, Any] | None, run_config: EcsRunConfig) -> dict[str, Any]:
    """The run-task arguments from the three sources, before the backend adds its own."""
    kwargs = merge({}, template or {})
    # The agent's settings.
    if settings.cluster:
        kwargs["cluster"] = settings.cluster
    set_placement(kwargs, settings.launch_type, settings.capacity_provider_strategy)
    if settings.subnets or settings.security_groups or settings.assign_public_ip is not None:
        network = kwargs.setdefault("networkConfiguration", {}).setdefault("awsvpcConfiguration", {})
        if settings.subnets:
            network["subnets"] = list(settings.subnets)
        if settings.security_groups:
            network["securityGroups"] = list(settings.security_groups)
        if settings.assign_public_ip is not None:
            network["assignPublicIp"] = "ENABLED" if settings.assign_public_ip else "DISABLED"
    if settings.tags:
        kwargs["tags"] = as_tag_list({**tag_dict(kwargs.get("tags")), **settings.tags})
    # The run config: its run_task_kwargs, then its own fields.
    kwargs = merge(kwargs, run_config.run_task_kwargs)
    set_placement(kwargs, run_config.launch_type, run_config.capacity_provider_strategy)
    if "launchType" not in kwargs and "capacityProviderStrategy" not in kwargs:
        kwargs["launchType"] = "FARGATE"
    overrides = kwargs.setdefault("overrides", {})
    if run_config.cpu:
        overrides["cpu"] = run_config.cpu
    if run_config.memory:
        overrides["memory"] = run_config.memory
    for key in ("cpu", "memory"):
        if key in overrides:
            overrides[key] = str(overrides[key])
    return kwargs


def placement_of(kwargs: dict[str, Any]) -> Placement:
    return Placement(kwargs.get("launchType"), kwargs.get("capacityProviderStrategy"))


def subnets_of(kwargs: dict[str, Any]) -> list[str]:
    return list(((kwargs.get("networkConfiguration") or {}).get("awsvpcConfiguration") or {}).get("subnets") or [])


def flow_override(kwargs: dict[str, Any], container: str) -> dict[str, Any]:
    entries = kwargs.setdefault("overrides", {}).setdefault("containerOverrides", [])
    found = next((e for e in entries if e.get("name") == container), None)
    if found is None:
        found = {"name": container}
        entries.insert(0, found)
    return found


def set_environment(entry: dict[str, Any], env: dict[str, str | None]) -> None:
    """The workload's environment on the container override; a ``None`` value removes the variable."""
    ours = {name: value for name, value in env.items() if value is not None}
    removed = {name for name, value in env.items() if value is None}
    kept = [e for e in entry.get("environment") or [] if e.get("name") not in ours and e.get("name") not in removed]
    entry["environment"] = [{"name": name, "value": str(value)} for name, value in ours.items()] + kept


def check_size(kwargs: dict[str, Any]) -> None:
    size = len(json.dumps(kwargs.get("overrides") or {}, separators=(",", ":")))
    if size > MAX_OVERRIDES:
        raise DeploymentError(
            f"the run-task overrides (the run's environment and command) are {size} characters; ECS allows "
            f"{MAX_OVERRIDES}: make the environment smaller (large values belong in S3, SSM or Secrets Manager)"
        )


def is_transient(reason: str) -> bool:
    lowered = reason.lower()
    return any(marker.lower() in lowered for marker in TRANSIENT_FAILURES)


def _failure_text(failures: list[dict[str, Any]]) -> str:
    return "; ".join(
        " ".join(filter(None, [f.get("reason"), f"({f['detail']})" if f.get("detail") else "", f.get("arn")]))
        for f in failures
    )


def launch(
    clients: AwsClients,
    kwargs: dict[str, Any],
    *,
    start_timeout: float,
    log: Callable[[str], None],
    stopping: Callable[[], bool],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """``run_task`` once, retrying transient failures with backoff within ``start_timeout``.

    :return: the task, as run_task describes it.
    :raise DeploymentError: a lasting failure (AWS's reason in the message), or the start
        timeout passed.
    """
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        why = ""
        try:
            answer = clients.ecs.run_task(**kwargs)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "ConflictException":
                # The clientToken was used before, by an earlier launch of this attempt.
                existing = list(
                    exc.response.get("resourceIds") or exc.response.get("Error", {}).get("resourceIds") or []
                )
                if existing:
                    return {"taskArn": existing[0], "relaunched": True}
                raise DeploymentError(f"ECS refused the task: {explain(exc)}") from None
            if code == "ClusterNotFoundException":
                raise DeploymentError(
                    f"cluster {kwargs.get('cluster', 'default')!r} does not exist: set the cluster setting, "
                    "or cluster in run_task_kwargs"
                ) from None
            if code not in TRANSIENT_ERRORS:
                raise DeploymentError(f"ECS refused the task: {explain(exc)}") from None
            why = explain(exc)
        except NO_CREDENTIALS as exc:
            raise AwsUnavailable(explain(exc)) from None
        except UNREACHABLE as exc:
            why = f"cannot reach ECS: {explain(exc)}"
        else:
            tasks = answer.get("tasks") or []
            if tasks:
                return tasks[0]
            failures = answer.get("failures") or []
            text = _failure_text(failures) or "no task and no failure in the answer"
            if not any(is_transient(str(f.get("reason", ""))) for f in failures):
                raise DeploymentError(f"ECS could not start the task: {text}")
            why = text
        elapsed = clock() - started
        delay = RETRY_DELAYS[min(attempt - 1, len(RETRY_DELAYS) - 1)]
        if elapsed + delay > start_timeout or stopping():
            raise DeploymentError(
                f"ECS could not start the task within the start timeout of {start_timeout:g}s "
                f"({attempt} attempt(s)): {why}"
            )
        log(f"ECS could not start the task yet ({why}); retrying in {delay:g}s")
        sleep(delay)
