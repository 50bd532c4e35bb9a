"""Shipping a run's output (``output.log`` in its run directory) to the run's logs.

Two positions in ``output.log`` are kept per run: how far lines were *queued* (in memory, so a
line is queued once), and how far the API *has* them (the run directory's ``shipped`` file,
moved only when the agent's run logs call back that the API acknowledged them). An agent that
stops while the API is away leaves ``shipped`` behind the lines it could not send; the agent
that re-attaches to the run reads from there and sends them, so no line is lost (and none is
sent twice, unless an acknowledgement itself was lost).

While a run goes on, at most :data:`IN_FLIGHT_BYTES` of its output wait for the API at once:
the rest stays on disk until the API catches up (memory stays bounded through an outage).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from agent_core import FlowRun
from agent_core.workload import ships_output
from agent_plugin_local.rundir import RunDir
from agent_plugin_local.state import state_of

#: The most output of one running run read and not yet acknowledged by the API.
IN_FLIGHT_BYTES = 1 << 20


def ship(agent: Any, flow_run: FlowRun, rd: RunDir, *, final: bool = False) -> None:
    """Queue the lines written since the last time (with ``final``, an unfinished last one too).

    Through ``agent.write_output``, which keeps them out of the API when output is off for the
    run (and then acknowledges them at once); with neither shipping nor ``show_flow_logs`` the
    log is not even read. With ``final`` (the workload ended) everything left is queued.
    """
    show = agent.backend_settings.get("show_flow_logs", False)
    if not show and not ships_output(agent, flow_run):
        return
    positions = state_of(agent).output
    with positions.lock:  # the monitor and a cancel thread may ship one run at once
        start = positions.queued(rd)
        while final or start - rd.shipped() < IN_FLIGHT_BYTES:
            lines, offset = rd.new_output(start, final=final)
            if not lines:
                return
            positions.mark_queued(rd, offset)
            last = len(lines) - 1
            for index, line in enumerate(lines):
                on_shipped = partial(positions.acknowledged, rd, offset) if index == last else None
                agent.write_output(flow_run, line, on_shipped=on_shipped)
                if show:
                    agent.logger.info("[%s] %s", flow_run.name or flow_run.id, line)
            start = offset


def tail(agent: Any, flow_run: FlowRun, rd: RunDir, count: int) -> list[str] | None:
    """The last ``count`` lines of output, or None when the run's output is off (it stays local)."""
    if not ships_output(agent, flow_run):
        return None
    return rd.tail(count)
