"""The run-state writer: final states the agent could not write at once are written later.

A deploy that fails while the API is away must not leave its run Submitted for good. The
writer keeps each state it could not write and tries again with the 0.25 -> 10 s backoff, on
its own ``run-states`` thread, until the API takes it or the run is no longer the agent's
(another agent, a retry or the lease recovery moved it on: :meth:`Agent.set_final_state`
answers True then). At shutdown it keeps trying until its deadline; what is still unwritten
then is left to the server's lease recovery, and named in the log.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent_core.engine.backoff import Backoff
from agent_core.models import FlowRun
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent


@dataclass
class _Pending:
    run: FlowRun
    state: State
    message: str


class StateWriter:
    """The run-state writer part (:mod:`agent_core.engine.parts`)."""

    name = "run-states"

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="run-states", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def write(self, run: FlowRun, state: State, message: str) -> bool:
        """Write ``state`` now if the API takes it, else keep it for the writer thread.

        True if it was written (or there is nothing left to write) at once.
        """
        if self.agent.set_final_state(run, state, message):
            return True
        with self._lock:
            self._pending[run.id] = _Pending(run, state, message)
        self._wake.set()
        return False

    def stop(self, deadline: float) -> None:
        """Try what is pending until ``deadline`` (``time.monotonic()``), then stop the thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        left = self.pending
        if left:
            self.agent.logger.error(
                "%d run state(s) could not be written before the exit: the API's lease recovery will settle them",
                left,
            )

    def _run(self) -> None:
        backoff = Backoff()
        while True:
            self._wake.wait(backoff.next_delay(False) if self.pending else None)
            self._wake.clear()
            if self._write_pending():
                backoff = Backoff()
            if self._stop.is_set() and not self.pending:
                return
            if self._stop.is_set():
                # Stopping: keep trying with the backoff until the joiner's deadline gives up.
                continue

    def _write_pending(self) -> bool:
        """One attempt for each pending state; True if all were written."""
        with self._lock:
            items = list(self._pending.values())
        for item in items:
            try:
                written = self.agent.set_final_state(item.run, item.state, item.message)
            except Exception:  # an answer of the wrong shape: kept, and tried again like an outage
                self.agent.logger.exception("Could not mark run %s %s; trying again", item.run.id, item.state.value)
                written = False
            if written:
                with self._lock:
                    self._pending.pop(item.run.id, None)
                self.agent.logger.info("Flow run %s marked %s after all", item.run.id, item.state.value)
        return not self.pending
