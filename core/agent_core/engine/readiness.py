"""The readiness part: the backend's ``preflight`` checks, again every ``readiness_interval``.

While any check fails (the Docker daemon unreachable, the ECS cluster gone, a check that
raises) the agent claims no new runs and its readiness probe says why; each change is logged
once. The first check runs at start-up, on the agent's thread; later ones on ``readiness``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent_core.engine.parts import LoopThread

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent


class Readiness(LoopThread):
    name = "readiness"

    def __init__(self, agent: Agent) -> None:
        super().__init__()
        self.agent = agent
        self.ready = False  # the last check passed (False before any)
        self.failing = False  # the last check failed (an agent never checked still claims)
        self.problem = ""

    def run(self) -> None:
        while not self.stopped.wait(self.agent.settings.readiness_interval):
            self.check()

    def check(self) -> None:
        """Run every plugin's preflight checks now and note the outcome (logged on change)."""
        agent = self.agent
        # A raising check is already a failed one (Agent.preflight), never the end of this loop.
        failed = [result for result in agent.preflight() if not result.ok]
        problem = "; ".join(f"{r.name}: {r.detail}" for r in failed)
        was_ready, old_problem = self.ready, self.problem
        self.ready = not failed
        self.failing = bool(failed)
        self.problem = problem
        if failed and problem != old_problem:
            for result in failed:
                agent.logger.warning("preflight %s failed: %s", result.name, result.detail)
            agent.logger.warning(
                "backend %r not ready: claiming no runs until its checks pass (checked every %gs)",
                agent.backend,
                agent.settings.readiness_interval,
            )
        elif not failed and not was_ready and old_problem:
            agent.logger.info("backend %r ready again: claiming runs", agent.backend)
            agent.poke()  # the runs left Scheduled meanwhile are claimed now, not after a backoff
