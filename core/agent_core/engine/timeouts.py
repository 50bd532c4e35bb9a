"""The timeouts part: a run that does not start, or runs too long, is stopped and marked Failed.

Two limits, checked on the *timeouts* thread every ``TICK`` seconds for the runs the monitor
watches:

- **Start timeout** (``[agent] start_timeout_seconds``, 300 s; 0 turns it off): a run deployed
  (or re-attached) that the backend has not reported running within the limit, an image that
  never pulls or a task that never leaves PENDING, is stopped through ``cancel_deployment`` and
  marked Failed "Run did not start within Ns". The time ``deploy_flow`` itself takes is not
  counted: a deploy thread cannot be interrupted, and what it started is not known until it
  returns.
- **Run timeout** (the run config's core key ``timeout_seconds``, else ``[agent]
  run_timeout_seconds``, 0: no limit): a run Running for longer is stopped the same way and
  marked Failed "Run timed out after Ns".

The clocks start when this agent sees the change (a run event), so a restarted agent that
re-attaches to a run starts them again. A Failed run with retries left is scheduled again by
the API, as for any failure. The server's own timeout, for runs Cancelling that no live agent
acts on, is ``[server] cancelling_timeout_seconds`` (``server/leases.py``).

Taking a run over from the monitor before its workload is stopped (:meth:`Monitor.release`)
is what keeps the monitor from reporting the stop as the run's own exit.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_core.engine.monitor import LOG_FLUSH_WAIT
from agent_core.errors import AgentError
from agent_core.models import FlowRun
from agent_core.runconfig import core_options
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.events import RunEvent

log = logging.getLogger(__name__)

# How often the limits are checked: far finer than any sensible limit.
TICK = 0.5
# States in which a run is still this agent's to stop (a Cancelling one is the user's cancel).
ACTIVE = (State.SUBMITTED, State.RUNNING)


@dataclass
class _Clocks:
    run: FlowRun
    deployed_at: float | None = None  # monotonic, first seen deployed (or re-attached)
    running_at: float | None = None  # monotonic, first seen Running
    acting: bool = False  # a stop is under way on its own thread


class Timeouts:
    """The start and run timeouts of an agent (a part: ``start()``, ``stop(deadline)``, ``alive()``)."""

    name = "timeouts"

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._clocks: dict[str, _Clocks] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stoppers: list[threading.Thread] = []
        agent.events.subscribe(self.on_event)

    # --- limits ---------------------------------------------------------------------------

    @property
    def start_timeout(self) -> float | None:
        return self.agent.settings.start_timeout_seconds or None

    def run_timeout(self, run: FlowRun) -> tuple[float | None, str]:
        """The run's maximum runtime and where it comes from; ``None``: no limit."""
        try:
            configured = core_options(run.run_config).timeout_seconds
        except AgentError:
            configured = None  # the API validates run configs; a bad one fails its deploy anyway
        if configured:
            return configured, "timeout_seconds"
        return self.agent.settings.run_timeout_seconds or None, "run_timeout_seconds"

    # --- the part -------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or, after it died, restart) the timeouts thread."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="timeouts", daemon=True)
            self._thread.start()

    def stop(self, deadline: float) -> None:
        """Stop checking; stops under way get until ``deadline`` (``time.monotonic()``) to end."""
        self._stop.set()
        for thread in [self._thread, *self._stoppers]:
            if thread is not None and thread.is_alive():
                thread.join(max(0.0, deadline - time.monotonic()))

    def alive(self) -> bool:
        """False once the thread ended without being stopped (the supervisor restarts it)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    # --- what the runs do (run events, on the run-events thread: keep it short) -----------

    def on_event(self, event: RunEvent) -> None:
        run, new = event.flow_run, event.new_state
        with self._lock:
            if new in ACTIVE:
                clocks = self._clocks.get(run.id)
                if clocks is None or clocks.run.attempt != run.attempt:
                    clocks = self._clocks[run.id] = _Clocks(run)
                else:
                    clocks.run = run
                if new == State.RUNNING and clocks.running_at is None:
                    clocks.running_at = self.agent.clock.monotonic()
            else:
                # Final, handed back, Cancelling (the user's cancel wins) or lost: nothing to time.
                clocks = self._clocks.get(run.id)
                if clocks is not None and clocks.run.attempt == run.attempt and not clocks.acting:
                    del self._clocks[run.id]

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("timeouts round failed; trying again")
            self.agent.clock.wait(self._stop, TICK)

    def tick(self) -> None:
        now = self.agent.clock.monotonic()
        due: list[tuple[_Clocks, str]] = []
        with self._lock:
            for run_id, clocks in list(self._clocks.items()):
                if clocks.acting:
                    continue
                if not self.agent.monitor.is_tracked(run_id):
                    if not self.agent.is_in_flight(run_id):
                        del self._clocks[run_id]  # nobody watches it (a backend without check_deployment)
                    continue  # still deploying: its clocks start once it is deployed
                if clocks.deployed_at is None:
                    clocks.deployed_at = now
                reason = self._expired(clocks, now)
                if reason:
                    clocks.acting = True
                    due.append((clocks, reason))
        for clocks, reason in due:
            thread = threading.Thread(
                target=self._act, args=(clocks, reason), name=f"timeout-{clocks.run.id[:8]}", daemon=True
            )
            self._stoppers = [t for t in self._stoppers if t.is_alive()] + [thread]
            thread.start()

    def _expired(self, clocks: _Clocks, now: float) -> str:
        """The Failed message if a limit ran out, else ``""``."""
        if clocks.running_at is None:
            limit = self.start_timeout
            if limit and clocks.deployed_at is not None and now - clocks.deployed_at > limit:
                return f"Run did not start within {limit:g}s (start_timeout_seconds)"
            return ""
        limit, source = self.run_timeout(clocks.run)
        if limit and now - clocks.running_at > limit:
            return f"Run timed out after {limit:g}s ({source})"
        return ""

    def _act(self, clocks: _Clocks, reason: str) -> None:
        """Stop the run's workload, then mark it Failed with ``reason``."""
        agent, run_id = self.agent, clocks.run.id
        done = True
        try:
            done = self._stop_and_fail(clocks, reason)
        except Exception:
            log.exception("stopping run %s (%s) failed", run_id, reason)
            done = False
        finally:
            with self._lock:
                if done:
                    self._clocks.pop(run_id, None)
                else:
                    clocks.acting = False  # the next round tries again
        if done:
            agent.logger.debug("timeouts: run %s handled", run_id)

    def _stop_and_fail(self, clocks: _Clocks, reason: str) -> bool:
        """True once nothing is left to do (stopped and marked, or no longer this agent's)."""
        agent, run = self.agent, clocks.run
        try:
            current = FlowRun.from_api(agent.client.get_flow_run(run.id))
        except AgentError as exc:
            log.debug("run %s: not read (%s); trying again", run.id, exc)
            return False
        if current.agent_id != agent.id or current.attempt != run.attempt or current.state not in ACTIVE:
            return True  # finished, cancelled or taken from this agent meanwhile: not ours to time
        if current.state == State.RUNNING and clocks.running_at is None:
            # It started after all (its run event is on the way): time its run from now.
            clocks.running_at = agent.clock.monotonic()
            return False
        item = agent.monitor.release(run.id, attempt=run.attempt)
        if item is None:
            return True  # the monitor let it go meanwhile (it ended)
        grace = agent.settings.cancel_grace_seconds
        agent.logger.warning("Flow run %s: %s; stopping %s", run.id, reason.lower(), item.deployment)
        agent.write_run_log(run.id, f"{reason}: stopping {item.deployment} (grace {grace:g}s)", "ERROR")
        try:
            stopped = agent.pm.hook.cancel_deployment(
                flow_run=current, deployment=item.deployment, agent=agent, grace_seconds=grace
            )
        except Exception as exc:
            log.exception("cancel_deployment failed for run %s", run.id)
            agent.write_run_log(run.id, f"Could not stop the workload: {exc}", "ERROR")
            stopped = False
        if stopped is False:
            agent.monitor.track(item.run, item.deployment)  # watched again; stopped next round
            return False
        message = f"{reason}; its workload was stopped"
        if stopped is None:
            message = f"{reason}; backend {agent.backend!r} cannot stop workloads, it may still be running"
        # The workload's last lines reach the run's logs before its final state, as on the monitor.
        agent.run_logs.flush(time.monotonic() + LOG_FLUSH_WAIT)
        agent.state_writer.write(current, State.FAILED, message)
        return True
