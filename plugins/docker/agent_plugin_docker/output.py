"""Shipping a container's output to the run's logs, and its tail for a failed run.

Docker keeps no per-reader position in a log, so how far shipping got is kept per container
in a small file (:mod:`agent_plugin_docker.runstate`), moved only once the API acknowledged
the lines (``on_shipped``): lines still queued when the agent stops are sent again by the
agent that re-attaches. Lines go out through ``agent.write_output``, which keeps them out of
the API when output is off for the run.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import docker.errors
from docker.models.containers import Container

from agent_core import Deployment, FlowRun
from agent_core.workload import ships_output
from agent_plugin_docker import containers
from agent_plugin_docker.daemon import UNREACHABLE, DaemonUnreachable, explain
from agent_plugin_docker.runstate import Cursor, parse_log
from agent_plugin_docker.state import state_dir, state_of


def ship(agent: Any, flow_run: FlowRun, container: Container, key: str) -> None:
    """Send the container's output lines not shipped yet to the run's logs.

    With output off for the run and no ``show_flow_logs``, the engine is not even asked.
    """
    show = agent.backend_settings.get("show_flow_logs", False)
    if not show and not ships_output(agent, flow_run):
        return
    st = state_of(agent)
    record = st.run_state(state_dir(agent), key)
    with st.ship_lock(key):
        since = record.cursor.since()
        try:
            raw = container.logs(stdout=True, stderr=True, timestamps=True, **({"since": since} if since else {}))
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            # e.g. a logging driver that cannot be read back: say so once, keep following it.
            if not record.warned:
                agent.write_run_log(flow_run, f"Cannot read the container's output: {explain(exc)}", "WARNING")
                record.warned = True
            return
        lines = parse_log(raw)
        new = record.cursor.unshipped(lines)
        if not new:
            return
        record.cursor.advance(lines, new)
        done = Cursor(record.cursor.stamp, record.cursor.count)
        for index, line in enumerate(new):
            last = index == len(new) - 1
            agent.write_output(flow_run, line.text, on_shipped=partial(record.acknowledge, done) if last else None)
            if show:
                agent.logger.info("[%s] %s", flow_run.name or flow_run.id, line.text)


def tail(agent: Any, flow_run: FlowRun, deployment: Deployment, count: int) -> list[str] | None:
    """The last ``count`` lines; None when they cannot be read or output is off for the run."""
    if not ships_output(agent, flow_run):
        return None
    try:
        container = containers.get(agent, deployment)
        if container is None:
            return None
        raw = container.logs(stdout=True, stderr=True, tail=count)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException):
        return None
    return raw.decode("utf-8", errors="replace").splitlines()[-count:]
