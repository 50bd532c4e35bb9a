"""The monitor thread: turns backend status into run states, and stops cancelled runs.

Every ``monitor_interval`` it asks ``check_deployment`` about each run this agent deployed:
running marks the run Running, an exit marks it Success or Failed (code, reason and output
tail), a vanished workload marks it Failed. Runs asked to cancel (state Cancelling) are
stopped through ``cancel_deployment`` on a thread of their own, then marked Cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_core.errors import APIUnavailable, IllegalTransition, NotFound, StateUpdateConflict
from agent_core.models import Deployment, DeploymentStatus, FlowRun
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent

log = logging.getLogger(__name__)

OUTPUT_TAIL_LINES = 20
# Runs checked before their writes are handed to the writer threads, and how many write at once.
CHECK_CHUNK = 32
WRITERS = 4
# The least pause between two rounds, however long the last one took.
MIN_PAUSE = 0.01
# How long a run's last output may take to reach the API before its final state is written.
LOG_FLUSH_WAIT = 2.0


@dataclass
class Tracked:
    run: FlowRun
    deployment: Deployment
    cancelling: bool = False
    cancel_thread: threading.Thread | None = None


class Monitor:
    """A part of the agent (:mod:`agent_core.engine.parts`): ``start``, ``stop(deadline)``, ``alive``."""

    name = "monitor"

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._tracked: dict[str, Tracked] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread: threading.Thread | None = None  # set once started
        self._warned_no_check = False

    # --- bookkeeping ----------------------------------------------------------------------

    def track(self, run: FlowRun, deployment: Deployment) -> None:
        if run.deployment is None:
            run.deployment = deployment.to_dict()  # so run events carry it
        with self._lock:
            older = self._tracked.get(run.id)
            self._tracked[run.id] = Tracked(run, deployment)
        if older is not None and older.run.attempt != run.attempt:
            # This agent deployed a newer attempt: the older one was taken from it (its lease ran out).
            self.agent.lease.abandon(older, run)

    def untrack(self, run_id: str) -> None:
        with self._lock:
            self._tracked.pop(run_id, None)

    def release(self, run_id: str, attempt: int | None = None, only: Tracked | None = None) -> Tracked | None:
        """Take a run from the monitor (a timeout or a lost lease stops it); None if not tracked.

        With ``attempt``, only that attempt, and with ``only``, only that very entry: a newer
        attempt this agent deployed meanwhile stays tracked.
        """
        with self._lock:
            item = self._tracked.get(run_id)
            if item is None or (attempt is not None and item.run.attempt != attempt):
                return None
            if only is not None and item is not only:
                return None
            return self._tracked.pop(run_id)

    def snapshot(self) -> list[Tracked]:
        with self._lock:
            return list(self._tracked.values())

    def is_tracked(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._tracked

    @property
    def count(self) -> int:
        with self._lock:
            return len(self._tracked)

    def tracked(self) -> list[Tracked]:
        """The runs being watched (at exit: the workloads left running unwatched)."""
        with self._lock:
            return list(self._tracked.values())

    def start(self) -> None:
        """Start (or, after it died, restart) the monitor thread."""
        self.thread = threading.Thread(target=self._loop, name="monitor", daemon=True)
        self.thread.start()

    def alive(self) -> bool:
        return self.thread is None or self.thread.is_alive() or self._stop.is_set()

    def stop(self, deadline: float) -> None:
        """Stop the loop and wait, until ``deadline`` (``time.monotonic()``), for it and for the
        cancels in progress (a cancel's grace period may outlast it: then it is named)."""
        self._stop.set()
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(max(0.0, deadline - time.monotonic()))
        for item in self.tracked():
            thread = item.cancel_thread
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    log.warning("the cancel of run %s is still in progress at exit", item.run.id)

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        clock = self.agent.clock
        while not self._stop.is_set():
            started = clock.monotonic()
            try:
                self.tick()
            except Exception:
                log.exception("monitor round failed; trying again")
            # Rounds start every monitor_interval, not that long after the last one ended: a round
            # that wrote the states of a burst's many runs took long already, and the runs that
            # ended meanwhile would otherwise wait a whole interval more.
            elapsed = clock.monotonic() - started
            clock.wait(self._stop, max(MIN_PAUSE, self.agent.settings.monitor_interval - elapsed))

    def tick(self) -> None:
        """One round: every tracked run's status, and the API writes they call for.

        The runs are checked a chunk at a time, and each chunk's writes (Running, a final state:
        a round trip each) go to writer threads while the next chunk is checked: a burst of short
        runs ends hundreds at once, and their states should not wait for the whole round's
        checks, nor the checks for the writes.
        """
        with self._lock:
            tracked = list(self._tracked.values())
        if not tracked:
            return
        self._notice_cancellations()
        writers: ThreadPoolExecutor | None = None
        pending: list[Future[None]] = []
        try:
            for first in range(0, len(tracked), CHECK_CHUNK):
                writes = self._check(tracked[first : first + CHECK_CHUNK])
                if writes is None:
                    return  # stopping
                if not writes:
                    continue
                if len(writes) == 1 and writers is None:
                    self._handle_all(writes)  # a quiet round: no thread for one write
                    continue
                if writers is None:
                    writers = ThreadPoolExecutor(WRITERS, thread_name_prefix="monitor-write")
                pending += [writers.submit(self._handle_all, [write]) for write in writes]
        finally:
            if writers is not None:
                wait(pending)
                writers.shutdown(wait=True)

    def _check(self, items: list[Tracked]) -> list[tuple[Tracked, DeploymentStatus]] | None:
        """The statuses of ``items`` that need an API write; None once the monitor is stopping."""
        checked: list[tuple[Tracked, DeploymentStatus]] = []
        for item in items:
            if self._stop.is_set():
                return None
            if not item.cancelling or item.cancel_thread is None:
                status = self._status(item)
                if status is not None:
                    checked.append((item, status))
        if any(status.kind not in ("pending", "running") for _, status in checked):
            # The output of every run of the chunk that ended, shipped in one go (not a flush each).
            self.agent.run_logs.flush(time.monotonic() + LOG_FLUSH_WAIT)
        return [(item, status) for item, status in checked if _needs_write(item, status)]

    def _handle_all(self, checked: list[tuple[Tracked, DeploymentStatus]]) -> None:
        for item, status in checked:
            if self._stop.is_set():
                return
            try:
                self.handle_status(item, status, logs_flushed=True)
            except Exception:
                log.exception("handling the status of run %s failed; trying again", item.run.id)

    def _notice_cancellations(self) -> None:
        try:
            runs = self.agent.client.list_flow_runs(agent_id=self.agent.id, states=[State.CANCELLING.value])
        except APIUnavailable:
            return
        for data in runs:
            self.request_cancel(FlowRun.from_api(data))

    def request_cancel(self, run: FlowRun) -> None:
        """Stop the workload of ``run`` (now Cancelling); untracked runs are marked Cancelled."""
        with self._lock:
            item = self._tracked.get(run.id)
            if item is None:
                # Decided under the lock: a deploy thread tracks its run (taking this lock)
                # before it leaves the in-flight set, so a run neither tracked nor in flight
                # has no workload of ours, now or later. Looked at apart, a deploy finishing
                # in between would leave its workload running untracked, its run Cancelled.
                untouched = not self.agent.is_in_flight(run.id)
            elif item.cancel_thread is not None:
                return
            else:
                item.run = run
                item.cancelling = True
                item.cancel_thread = threading.Thread(
                    target=self._cancel, args=(item,), name=f"cancel-{run.id[:8]}", daemon=True
                )
                item.cancel_thread.start()
                return
        if untouched:
            # Nothing of ours runs for it (the deploy failed or never happened).
            self.agent.set_final_state(run, State.CANCELLED, "Cancelled (no workload was running)")

    def _cancel(self, item: Tracked) -> None:
        run, grace = item.run, self.agent.settings.cancel_grace_seconds
        self.agent.write_run_log(run.id, f"Cancelling: stopping {item.deployment} (grace {grace:g}s)")
        try:
            stopped = self.agent.pm.hook.cancel_deployment(
                flow_run=run, deployment=item.deployment, agent=self.agent, grace_seconds=grace
            )
        except Exception as exc:
            log.exception("cancel_deployment failed for run %s", run.id)
            self.agent.write_run_log(run.id, f"Could not stop the workload: {exc}", "ERROR")
            stopped = False
        if stopped is None:
            self.agent.write_run_log(
                run.id, f"Backend {self.agent.backend!r} cannot stop workloads; it may still be running", "WARNING"
            )
        elif not stopped:
            with self._lock:
                item.cancel_thread = None  # try again next round
            return
        self.agent.run_logs.flush(time.monotonic() + LOG_FLUSH_WAIT)
        if self.agent.set_final_state(item.run, State.CANCELLED, "Cancelled"):
            self.untrack(run.id)

    def _status(self, item: Tracked) -> DeploymentStatus | None:
        """The backend's word on the run's workload; None if there is none this round."""
        run = item.run
        try:
            status = self.agent.pm.hook.check_deployment(flow_run=run, deployment=item.deployment, agent=self.agent)
        except Exception:
            log.exception("check_deployment failed for run %s; trying again", run.id)
            return None
        if status is None:
            if not self._warned_no_check:
                log.warning(
                    "backend %r has no check_deployment: final states are left to the workloads", self.agent.backend
                )
                self._warned_no_check = True
            self.untrack(run.id)
        return status

    def handle_status(self, item: Tracked, status: DeploymentStatus, *, logs_flushed: bool = False) -> None:
        """Act on one status: Running, a final state, or nothing yet. ``logs_flushed``: the
        run's output was flushed after this status was read (the round's one flush)."""
        run = item.run
        if status.kind == "pending":
            return
        with self._lock:
            if self._tracked.get(run.id) is not item:
                return  # released meanwhile (timeout, lost lease): whatever stopped it writes the state
        if run.state == State.SUBMITTED:
            # Also for a workload that already exited: the history shows it ran.
            self._set_running(item)
            run = item.run  # its new version: the final state written next must not conflict
        if status.kind == "running":
            return
        # The run's output must be readable by the time anyone sees it final.
        if not logs_flushed:
            self.agent.run_logs.flush(time.monotonic() + LOG_FLUSH_WAIT)
        if item.cancelling:
            done = self.agent.set_final_state(run, State.CANCELLED, "Cancelled")
        elif status.kind == "exited" and status.exit_code == 0:
            done = self.agent.set_final_state(run, State.SUCCESS, "Exited with code 0")
        elif status.kind == "exited":
            message = f"Exited with code {status.exit_code}"
            if status.reason:
                message += f" ({status.reason})"
            done = self._fail(item, message)
        else:
            reason = status.reason or "it is no longer on the platform"
            done = self._fail(item, f"The workload disappeared: {reason}")
        if done:
            self.untrack(run.id)

    def _fail(self, item: Tracked, message: str) -> bool:
        tail = self._output_tail(item)
        full = message
        if tail:
            full += f"\nLast {len(tail)} lines of output:\n" + "\n".join(tail)
        self.agent.write_run_log(item.run.id, full, "ERROR")
        return self.agent.set_final_state(item.run, State.FAILED, full)

    def _output_tail(self, item: Tracked) -> list[str]:
        try:
            lines = self.agent.pm.hook.deployment_logs(
                flow_run=item.run, deployment=item.deployment, agent=self.agent, tail=OUTPUT_TAIL_LINES
            )
        except Exception:
            log.exception("deployment_logs failed for run %s", item.run.id)
            return []
        return list(lines or [])[-OUTPUT_TAIL_LINES:]

    def _set_running(self, item: Tracked) -> None:
        try:
            item.run = self.agent.mark_running(item.run, item.deployment)
        except (StateUpdateConflict, IllegalTransition):
            self._refresh(item)
        except APIUnavailable:
            return

    def _refresh(self, item: Tracked) -> None:
        try:
            current = FlowRun.from_api(self.agent.client.get_flow_run(item.run.id))
        except NotFound:
            self.untrack(item.run.id)
            return
        except APIUnavailable:
            return
        if not self.agent.lease.owns(item.run, current):
            # Recovered from this agent (its lease ran out) and retried or handed to another one.
            self.agent.lease.give_up(item, current)
            return
        item.run = current
        if item.run.state.is_final:
            self.untrack(item.run.id)
        elif item.run.state == State.CANCELLING:
            self.request_cancel(item.run)


def _needs_write(item: Tracked, status: DeploymentStatus) -> bool:
    """Whether :meth:`Monitor.handle_status` has anything to tell the API about this status."""
    if status.kind == "pending":
        return False
    return status.kind != "running" or item.run.state == State.SUBMITTED
