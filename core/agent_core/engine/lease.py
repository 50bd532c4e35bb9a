"""Lease loss on the agent's side: stop the workloads of runs that are no longer this agent's.

The API server recovers the runs of an agent silent for longer than its lease (``[server]
agent_lease_seconds``, ``server/leases.py``): undeployed ones go back to Scheduled, deployed
or Running ones become Failed (and are retried if retries remain), so that another agent may
run them. An agent that was only frozen, cut off or overloaded comes back with workloads the
API no longer counts as its own. Left running, they would be a second live attempt of a run.

So when the answer to a heartbeat says ``lease_expired`` (the heartbeat itself already took a
new lease: the agent goes on claiming and running work), :meth:`LeaseKeeper.lease_lost` reads
every run the monitor watches back from the API, and for each run no longer this agent's
(another attempt, another agent, handed back, or made final by the recovery) it takes the run
from the monitor, stops its workload through ``cancel_deployment`` on a thread of its own (the
heartbeat must go on meanwhile), writes it to the run's logs and the agent's log, and emits a
run event with the message ``lease lost: ...``. Runs still this agent's (the sweep had not
reached them) are kept, as after a restart in time.

The monitor does the same without waiting for a heartbeat where it finds out first: a state
change refused because the run moved to another agent or attempt (:meth:`LeaseKeeper.give_up`),
or this agent deploying a newer attempt of a run whose older attempt it still watches, when only
its heartbeat thread was held up (:meth:`LeaseKeeper.abandon`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from agent_core.errors import AgentError, NotFound
from agent_core.models import FlowRun
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.monitor import Tracked

# States in which a run this agent deployed is still its own to watch.
HELD = (State.SUBMITTED, State.RUNNING, State.CANCELLING)


class LeaseKeeper:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.losses = 0  # heartbeats that said the lease had expired
        self._stoppers: list[threading.Thread] = []
        self._lock = threading.Lock()

    def on_heartbeat(self, answer: dict[str, object]) -> None:
        """Act on a heartbeat's answer (heartbeat thread)."""
        if answer.get("lease_expired") is True:
            self.lease_lost()

    def owns(self, mine: FlowRun, current: FlowRun) -> bool:
        """Whether ``current`` (the API's view) is still the attempt ``mine`` this agent deployed."""
        return current.agent_id == self.agent.id and current.attempt == mine.attempt

    def lease_lost(self) -> int:
        """Stop the workloads of the watched runs that are no longer this agent's; how many."""
        agent = self.agent
        self.losses += 1
        watched = agent.monitor.snapshot()
        agent.logger.warning(
            "The API says the lease of agent %s expired (no heartbeat for longer than its agent_lease_seconds): "
            "its runs were recovered for other agents. Took a new lease; checking the %d run(s) it watches "
            "and stopping the workloads of those no longer its own",
            agent.name,
            len(watched),
        )
        lost = 0
        for item in watched:
            try:
                current = FlowRun.from_api(agent.client.get_flow_run(item.run.id))
            except NotFound:
                current = None
            except AgentError as exc:
                # Not known now: the monitor's next conflict on it, or the next loss, settles it.
                agent.logger.warning("Could not read run %s back after the lease loss: %s", item.run.id, exc)
                continue
            if current is not None and self.owns(item.run, current) and current.state in HELD:
                continue
            if self.give_up(item, current):
                lost += 1
        if lost:
            agent.logger.warning("Lease lost: stopping the workloads of %d run(s) no longer this agent's", lost)
        return lost

    def give_up(self, item: Tracked, current: FlowRun | None) -> bool:
        """Take ``item`` from the monitor and stop its workload; False if the monitor had let it go."""
        if self.agent.monitor.release(item.run.id, only=item) is None:
            return False
        self.abandon(item, current)
        return True

    def abandon(self, item: Tracked, current: FlowRun | None) -> None:
        """Stop the workload of ``item`` (no longer tracked), whose run is now ``current`` on the API."""
        agent, run = self.agent, item.run
        if current is None:
            new, now = State.FAILED, "it is gone from the API"
        elif current.attempt != run.attempt:
            new, now = State.FAILED, f"attempt {run.attempt} was failed, the run retried as attempt {current.attempt}"
        elif current.agent_id not in (None, agent.id):
            new, now = State.SCHEDULED, f"it was handed back and is now {current.state.value} on another agent"
        else:
            new, now = current.state, f"it is now {current.state.value}"
        what = f"agent {agent.name} was silent past its lease and {now}; stopping its workload"
        message = f"lease lost: {what}"
        agent.logger.warning("Flow run %s: %s (%s)", run.id, message, item.deployment)
        agent.write_run_log(run.id, f"Lease lost: {what} {item.deployment}", "WARNING")
        agent.events.emit(run, run.state, new, message, item.deployment)
        thread = threading.Thread(target=self._stop_workload, args=(item,), name=f"lost-{run.id[:8]}", daemon=True)
        with self._lock:
            self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
        thread.start()

    def _stop_workload(self, item: Tracked) -> None:
        agent, run = self.agent, item.run
        try:
            stopped = agent.pm.hook.cancel_deployment(
                flow_run=run, deployment=item.deployment, agent=agent, grace_seconds=agent.settings.cancel_grace_seconds
            )
        except Exception:
            agent.logger.exception("Could not stop the workload of run %s after the lease loss", run.id)
            return
        if stopped is None:
            agent.logger.error(
                "Backend %r cannot stop workloads: %s of run %s may still be running next to its new attempt",
                agent.backend,
                item.deployment,
                run.id,
            )
        elif not stopped:
            agent.logger.error("The workload %s of run %s did not stop after the lease loss", item.deployment, run.id)
        else:
            agent.logger.info("Stopped the workload %s of run %s (lease lost)", item.deployment, run.id)

    def stop(self, deadline: float) -> None:
        """Wait for the workload stops under way, until ``deadline`` (``time.monotonic()``)."""
        with self._lock:
            stoppers = list(self._stoppers)
        for thread in stoppers:
            thread.join(max(0.0, deadline - time.monotonic()))
