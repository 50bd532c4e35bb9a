"""Shipping a run's output (``output.log`` in its run directory) to the run's logs."""

from __future__ import annotations

from typing import Any

from agent_core import FlowRun
from agent_core.workload import ships_output
from agent_plugin_local.rundir import RunDir


def ship(agent: Any, flow_run: FlowRun, rd: RunDir, *, final: bool = False) -> None:
    """Send the lines written since the last time (with ``final``, an unfinished last one too).

    Through ``agent.write_output``, which keeps them out of the API when output is off for the
    run; with neither shipping nor ``show_flow_logs`` the log is not even read.
    """
    show = agent.backend_settings.get("show_flow_logs", False)
    if not show and not ships_output(agent, flow_run):
        return
    while True:
        lines, offset = rd.new_output(final=final)
        if not lines:
            return
        for line in lines:
            agent.write_output(flow_run, line)
            if show:
                agent.logger.info("[%s] %s", flow_run.name or flow_run.id, line)
        rd.set_shipped(offset)


def tail(agent: Any, flow_run: FlowRun, rd: RunDir, count: int) -> list[str] | None:
    """The last ``count`` lines of output, or None when the run's output is off (it stays local)."""
    if not ships_output(agent, flow_run):
        return None
    return rd.tail(count)
