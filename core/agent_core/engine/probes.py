"""What the agent's three health answers say, built in one place.

``GET /api/health`` (:meth:`Probes.health`, the older answer), ``/api/health/live``
(:meth:`Probes.liveness`) and ``/api/health/ready`` (:meth:`Probes.readiness`) are each made of
the findings below; only which findings count, and after how long, differs between them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent

# The longest one API call may hold the poll loop (the client's retries included).
MAX_API_WAIT = 10.0


class Probes:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    # --- findings -------------------------------------------------------------------------

    def _poll_not_run(self, limit: float) -> str | None:
        """The poll loop has not tried to poll for more than ``limit`` seconds."""
        return self._quiet_since(self.agent._last_poll_attempt, limit, "the poll loop has not run")

    def _poll_not_answered(self, limit: float) -> str | None:
        """No poll has succeeded for more than ``limit`` seconds."""
        return self._quiet_since(self.agent._last_poll_success, limit, "no successful poll")

    def _quiet_since(self, last: float | None, limit: float, what: str) -> str | None:
        """``"WHAT for Ns"`` when ``last`` (monotonic) is over ``limit`` seconds ago; nothing
        before the first time, or while the agent stops."""
        if last is None or self.agent.stopping:
            return None
        quiet = self.agent.clock.monotonic() - last
        return f"{what} for {quiet:.0f}s" if quiet > limit else None

    def _api_unreachable(self, after: float = 0.0, *, before_contact: bool = False) -> str | None:
        """The API unreachable (for more than ``after`` seconds, when given); counted only once it
        was reached, unless ``before_contact``."""
        agent = self.agent
        if agent._api_up or not (agent._contacted or before_contact):
            return None
        since = agent._api_failing_since
        down = agent.clock.monotonic() - since if since is not None else 0.0
        if after and down <= after:
            return None
        return f"the API has been unreachable for {down:.0f}s: {agent._api_last_error}"

    def _poll_limit(self) -> float:
        # A long poll legitimately holds the loop for its wait.
        return self.agent.settings.stall_threshold + MAX_API_WAIT + self.agent.poller.long_poll_seconds

    # --- the answers ----------------------------------------------------------------------

    def liveness(self) -> tuple[bool, dict[str, str]]:
        """The process and its parts are alive; not before the first successful API contact."""
        agent = self.agent
        problems: dict[str, str] = {}
        if not agent._contacted:
            problems["api"] = "no successful API contact yet"
        problems.update(agent.parts.problems(stopping=agent.stopping))
        if stalled := self._poll_not_run(self._poll_limit()):
            problems["poll"] = stalled
        return not problems, problems

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """The agent can take work now: alive, the API reachable, polls answered, the backend's
        preflight passing, not stopping, no plugin problem."""
        agent = self.agent
        _, live = self.liveness()
        problems = {**agent._problems, **live}
        if down := self._api_unreachable():
            problems["api"] = down
        if quiet := self._poll_not_answered(agent.settings.stall_threshold + agent.poller.long_poll_seconds):
            problems.setdefault("poll", quiet)
        if not agent.backend_ready:
            problems["backend"] = agent.readiness_checks.problem or "the backend's preflight has not passed yet"
        if agent.stopping:
            problems["stopping"] = "the agent is shutting down: no new claims"
        return not problems, problems

    def health(self) -> dict[str, Any]:
        """The older ``/api/health`` answer: poll-loop and API stalls past ``stall_threshold``,
        plugin problems, and a part that kept dying."""
        agent = self.agent
        threshold = agent.settings.stall_threshold
        problems = dict(agent._problems)
        if stalled := self._poll_not_run(threshold + MAX_API_WAIT):
            problems["poll"] = stalled
        if down := self._api_unreachable(after=threshold, before_contact=True):
            problems["api"] = down
        problems.update(agent.parts.problems(stopping=True))
        last = agent._last_poll_success_time
        return {
            "status": "unhealthy" if problems else "ok",
            "agent_id": agent.id,
            "name": agent.name,
            "backend": agent.backend,
            "labels": agent.labels,
            "last_successful_poll": last.isoformat() if last else None,
            "in_flight": agent.pool.pending,
            "monitored": agent.monitor.count,
            "problems": problems,
        }
