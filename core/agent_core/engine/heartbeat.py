"""The heartbeat part: tells the API the agent is alive, then calls every plugin's ``heartbeat``.

Every ``heartbeat_period`` seconds, on the ``heartbeat`` thread: ``POST
/api/agents/{id}/heartbeat`` (which keeps the agent's lease and answers with its Cancelling
runs, handed to the monitor) and then the ``heartbeat`` hook of every plugin. It beats on
through the drain, so the lease holds and cancels are still noticed; once its stop is asked no
hook call starts any more, which is what lets ``on_shutdown`` release what the hooks use.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from agent_core.engine.hooks import call_each
from agent_core.engine.parts import LoopThread

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent

log = logging.getLogger(__name__)


class Heartbeat(LoopThread):
    name = "heartbeat"

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent
        self.beats = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            self.beat()
            self.agent.clock.wait(self.stopped, self.agent.settings.heartbeat_period)

    def beat(self) -> None:
        """One heartbeat: the API's, then the plugins'; neither failing ends the loop."""
        try:
            self.agent.heartbeat_once()
        except Exception:  # a malformed answer, a bug: logged, and the next beat comes
            log.exception("API heartbeat failed")
        if self.stopped.is_set():
            return  # stopping: on_shutdown may come next, and no hook may run after it
        call_each(self.agent.pm, "heartbeat", agent=self.agent)
        self.beats += 1
