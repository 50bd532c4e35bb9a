"""Shipping a task's CloudWatch log stream to its run's logs, and the tail attached on failure.

Lines go out through ``agent.write_output``, which keeps them out of the API when output is
off for the run (``ship_output``); then neither shipping nor the failure tail reads the stream.

The stream is the one the awslogs driver writes: ``<prefix>/<container>/<task id>`` in the
definition's log group. Shipping pages with ``nextForwardToken`` from where the last round
stopped (kept in the task's record, so a restarted agent goes on from there) and stops when
AWS hands back the token it was given. A token AWS refuses (expired) falls back to the
timestamp of the last event shipped. While the task runs, one task's stream is read at most
every ``output_interval`` seconds (CloudWatch's GetLogEvents quota is per account); once it
stopped, to the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

import botocore.exceptions

from agent_core import FlowRun
from agent_core.workload import ships_output
from agent_plugin_ecs.aws import NO_CREDENTIALS, THROTTLING, UNREACHABLE, AwsClients, error_code, explain
from agent_plugin_ecs.runstate import TaskRecord

PAGE_LIMIT = 10_000  # events per call, CloudWatch's maximum
PAGES_WHILE_RUNNING = 5
PAGES_AT_END = 50


def stream_of(deployment_data: dict[str, Any]) -> tuple[str, str] | None:
    group, stream = deployment_data.get("log_group"), deployment_data.get("log_stream")
    return (str(group), str(stream)) if group and stream else None


def ship(
    agent: Any,
    clients: AwsClients,
    flow_run: FlowRun,
    deployment_data: dict[str, Any],
    record: TaskRecord,
    *,
    final: bool,
    interval: float,
    page_limit: int = PAGE_LIMIT,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Send the events not shipped yet to the run's logs; the number sent.

    Through ``agent.write_output`` (the workload contract: it honours ``ship_output``); with
    output off for the run, CloudWatch is not even asked.
    """
    if not ships_output(agent, flow_run):
        return 0
    target = stream_of(deployment_data)
    if target is None:
        if "no-logs" not in record.warned:
            record.warned.add("no-logs")
            agent.write_run_log(
                flow_run,
                "The task's flow container has no awslogs log configuration: its output is not shipped "
                "to the run's logs (set the ecs backend's log_group setting)",
                "WARNING",
            )
        return 0
    now = clock()
    if not final and now - record.shipped_at < interval:
        return 0
    record.shipped_at = now
    group, stream = target
    sent = 0
    for _ in range(PAGES_AT_END if final else PAGES_WHILE_RUNNING):
        try:
            events, token = _page(clients, group, stream, record, page_limit)
        except botocore.exceptions.ClientError as exc:
            code = error_code(exc)
            if code == "ResourceNotFoundException":
                _note_missing(agent, clients, flow_run, record, group, stream, final=final)
            elif code not in THROTTLING:
                _warn_once(agent, flow_run, record, "read", f"Cannot read the task's output: {explain(exc)}")
            break
        except (*UNREACHABLE, *NO_CREDENTIALS):
            break  # AWS unreachable: the next round tries again
        record.cursor.advance(events)
        sent += len(events)
        # A short page is the end of the stream for now; AWS also hands back the token it got.
        done = len(events) < page_limit or token == record.cursor.token
        record.cursor.token = token or record.cursor.token
        # The file keeps the position only once the API has the events (on_shipped): a
        # restarted agent reads again what an outage kept from the API.
        reached = replace(record.cursor)
        for index, event in enumerate(events):
            on_shipped = partial(record.acknowledge, reached) if index == len(events) - 1 else None
            agent.write_output(flow_run, str(event.get("message", "")).rstrip("\n"), on_shipped=on_shipped)
        if done:
            break
    return sent


def _page(
    clients: AwsClients, group: str, stream: str, record: TaskRecord, limit: int
) -> tuple[list[dict[str, Any]], str]:
    kwargs: dict[str, Any] = {"logGroupName": group, "logStreamName": stream, "startFromHead": True, "limit": limit}
    cursor = record.cursor
    if cursor.token:
        try:
            answer = clients.logs.get_log_events(**kwargs, nextToken=cursor.token)
            return list(answer.get("events") or []), str(answer.get("nextForwardToken") or "")
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "InvalidParameterException":
                raise
            cursor.token = ""  # refused (expired): go on from the last event's timestamp instead
    if cursor.timestamp:
        answer = clients.logs.get_log_events(**kwargs, startTime=cursor.timestamp)
        events = list(answer.get("events") or [])
        # Skip the events of that millisecond already shipped.
        skip = 0
        while skip < len(events) and skip < cursor.count and int(events[skip].get("timestamp", 0)) == cursor.timestamp:
            skip += 1
        return events[skip:], str(answer.get("nextForwardToken") or "")
    answer = clients.logs.get_log_events(**kwargs)
    return list(answer.get("events") or []), str(answer.get("nextForwardToken") or "")


def _warn_once(agent: Any, flow_run: FlowRun, record: TaskRecord, what: str, message: str) -> None:
    if what not in record.warned:
        record.warned.add(what)
        agent.write_run_log(flow_run, message, "WARNING")


def _group_missing(clients: AwsClients, group: str) -> bool:
    """Whether the log group is missing (rather than the stream): both are ResourceNotFoundException."""
    try:
        found = clients.logs.describe_log_groups(logGroupNamePrefix=group).get("logGroups") or []
    except (botocore.exceptions.ClientError, *UNREACHABLE, *NO_CREDENTIALS):
        return False
    return not any(g.get("logGroupName") == group for g in found)


def _note_missing(
    agent: Any,
    clients: AwsClients,
    flow_run: FlowRun,
    record: TaskRecord,
    group: str,
    stream: str,
    *,
    final: bool,
) -> None:
    if "no-group" in record.warned:
        return
    if "group-ok" not in record.warned:  # asked once per task: the stream is often just not there yet
        if _group_missing(clients, group):
            _warn_once(
                agent,
                flow_run,
                record,
                "no-group",
                f"Cannot ship the task's output: CloudWatch log group {group!r} does not exist "
                "(create it, or set log_group to an existing group)",
            )
            return
        record.warned.add("group-ok")
    if final:
        # The awslogs driver creates the stream when the container starts: none means it never did.
        _warn_once(
            agent,
            flow_run,
            record,
            "no-stream",
            f"No output: log stream {stream!r} does not exist in group {group!r} "
            "(the container may never have started)",
        )


def tail(clients: AwsClients, deployment_data: dict[str, Any], lines: int) -> tuple[list[str] | None, str]:
    """The last ``lines`` events of the task's stream, or None and why not."""
    target = stream_of(deployment_data)
    if target is None:
        return None, "the task's flow container has no awslogs log configuration"
    group, stream = target
    try:
        answer = clients.logs.get_log_events(
            logGroupName=group, logStreamName=stream, startFromHead=False, limit=max(1, lines)
        )
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            if _group_missing(clients, group):
                return None, f"CloudWatch log group {group!r} does not exist"
            return (
                None,
                f"log stream {stream!r} in group {group!r} does not exist (the container may never have started)",
            )
        return None, f"cannot read the task's output: {explain(exc)}"
    except (*UNREACHABLE, *NO_CREDENTIALS) as exc:
        return None, f"cannot read the task's output: {explain(exc)}"
    events = list(answer.get("events") or [])
    return [str(e.get("message", "")).rstrip("\n") for e in events][-lines:], ""
