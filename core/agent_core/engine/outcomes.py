"""One line in the agent's log for each run's outcome, next to the lines about its deployment.

A run-events listener: when a run this agent handles reaches a final state it logs
``Flow run ID (FLOW) finished: Success``, ``... failed: REASON`` (a WARNING, with the state's
message: the exit code, the deploy error, the timeout) or ``... was cancelled: MESSAGE``.
The run id is in the line (and in the JSON log's ``run_id``), so a log search for a run finds
its whole story in the agent's log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.events import RunEvent


class OutcomeLog:
    """Logs the final state of every run the agent's events report, on ``agent.logger``."""

    def __init__(self, agent: Agent) -> None:
        self.logger = agent.logger
        agent.events.subscribe(self.on_event)

    def on_event(self, event: RunEvent) -> None:
        new = event.new_state
        if not new.is_final or event.old_state == new:
            return
        run = event.flow_run
        what = f"Flow run {run.id} ({run.flow_name})" if run.flow_name else f"Flow run {run.id}"
        extra = {"run_id": run.id}
        message = event.message.strip()
        if new == State.SUCCESS:
            self.logger.info("%s finished: Success", what, extra=extra)
        elif new == State.FAILED:
            self.logger.warning("%s failed: %s", what, message or "no reason given", extra=extra)
        else:
            suffix = f": {message}" if message else ""
            self.logger.info("%s was cancelled%s", what, suffix, extra=extra)
