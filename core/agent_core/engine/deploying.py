"""Runs claimed by this agent whose ``deploy_flow`` has not returned yet, for the drain deadline.

A stopping agent waits up to ``drain_timeout`` for its deploys. A run still deploying then
was claimed but never launched: rather than leave it Submitted for the lease recovery, or fail
it, the agent hands it back (Submitted -> Scheduled, with a message) so that any agent may run
it at once, as a restarted agent does with the claims it never launched.

The deploy may still return after that. What it started then belongs to a run handed back, so
the deploy thread stops it at once (``cancel_deployment``) instead of recording it. The hand
back and the deploy thread's look at the outcome take one lock, so that a deploy returning
during the hand back is either recorded (not handed back) or withdrawn, never both.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agent_core.models import Deployment, FlowRun

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent


class Deploying:
    def __init__(self) -> None:
        self._runs: dict[str, FlowRun] = {}
        self._handed_back: set[str] = set()
        self._lock = threading.Lock()

    def begin(self, run: FlowRun) -> None:
        with self._lock:
            self._runs[run.id] = run

    def end(self, run_id: str) -> bool:
        """The deploy of ``run_id`` returned (or raised); True if the run was handed back meanwhile."""
        with self._lock:
            self._runs.pop(run_id, None)
            if run_id in self._handed_back:
                self._handed_back.discard(run_id)
                return True
            return False

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._runs)

    def hand_back_all(self, agent: Agent, message: str) -> int:
        """Hand back every run still deploying; how many went back."""
        with self._lock:
            run_ids = list(self._runs)
        handed = 0
        for run_id in run_ids:
            with self._lock:  # a deploy returning now waits in end() until this run is settled
                run = self._runs.get(run_id)
                if run is not None and agent.hand_back(run, message):
                    self._handed_back.add(run_id)
                    handed += 1
        return handed

    @staticmethod
    def withdraw(agent: Agent, run: FlowRun, deployment: Deployment) -> None:
        """Stop what a deploy started for a run handed back while it was deploying."""
        agent.logger.warning(
            "Flow run %s was handed back while deploying: stopping %s, which deploy_flow started after all",
            run.id,
            deployment,
        )
        try:
            stopped = agent.pm.hook.cancel_deployment(
                flow_run=run, deployment=deployment, agent=agent, grace_seconds=agent.settings.cancel_grace_seconds
            )
        except Exception:
            agent.logger.exception("Could not stop %s of run %s", deployment, run.id)
            return
        if not stopped:
            agent.logger.error("%s of run %s, handed back, may still be running", deployment, run.id)
