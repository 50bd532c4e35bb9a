"""Run events: every state the engine sets or learns, told to listeners off the engine's threads.

The engine calls :meth:`RunEvents.emit` wherever a run's state changes under its hands (claim,
deploy failure, Running, final states, hand-back, re-attach, cancel, lease lost). ``emit`` only
queues the event; the *run-events* thread then calls the in-process subscribers (core listeners
such as metrics) and the ``flow_run_state_changed`` hook of every plugin, in order. A listener
that raises is logged with the plugin's name, one that takes longer than ``slow_after`` seconds
is logged as slow; neither holds up a deploy, the monitor or the poll loop.
"""

from __future__ import annotations

import copy
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pendulum
import pluggy

from agent_core.engine.hooks import plugin_callers
from agent_core.models import Deployment, FlowRun
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.clock import Clock

log = logging.getLogger(__name__)

HOOK = "flow_run_state_changed"
SLOW_AFTER = 5.0
# Far more than the engine emits between two deliveries; past it events are dropped (and
# counted in the log) rather than letting a stuck listener grow the agent's memory forever.
MAX_QUEUED = 100_000


@dataclass(frozen=True)
class RunEvent:
    """One state change of one run, as the engine saw it.

    ``flow_run`` is a copy taken at the change (later changes do not show through);
    ``old_state`` is ``None`` when the engine did not know it; ``at`` is when it was emitted.
    """

    flow_run: FlowRun
    old_state: State | None
    new_state: State
    message: str
    deployment: Deployment | None
    at: pendulum.DateTime


Subscriber = Callable[[RunEvent], None]


class RunEvents:
    """The run-events part of an agent (:mod:`agent_core.engine.parts`): a queue and the thread
    that delivers it.

    ``pm``/``agent``: the plugin manager and the agent handed to the hook (``None`` for a part
    with subscribers only). Started by the agent before anything can emit; ``stop(deadline)``
    delivers what is queued until ``deadline`` (a ``time.monotonic()`` value), then gives up.
    """

    name = "run-events"

    def __init__(
        self,
        pm: pluggy.PluginManager | None = None,
        agent: Any = None,
        *,
        clock: Clock | None = None,
        slow_after: float = SLOW_AFTER,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self._pm = pm
        self._agent = agent
        self._clock = clock
        self.slow_after = slow_after
        self._queue: queue.Queue[RunEvent | None] = queue.Queue(maxsize=max_queued)
        self._subscribers: list[Subscriber] = []
        self._thread: threading.Thread | None = None
        self._stopping = False  # set by stop(): the thread ending then is no death
        self._lock = threading.Lock()
        self._dropped = 0
        self._delivered = 0
        # What the thread is inside, for the stop to say who holds it up.
        self._current: tuple[str, float] | None = None

    # --- the engine's side ----------------------------------------------------------------

    def subscribe(self, callback: Subscriber) -> None:
        """Call ``callback(event)`` for every event, on the run-events thread, before the hook."""
        with self._lock:
            self._subscribers.append(callback)

    def emit(
        self,
        flow_run: FlowRun,
        old_state: State | None,
        new_state: State,
        message: str = "",
        deployment: Deployment | None = None,
    ) -> None:
        """Queue an event; never blocks (a full queue drops it, with a warning)."""
        if deployment is None and flow_run.deployment:
            deployment = Deployment.from_dict(flow_run.deployment)
        now = self._clock.now() if self._clock is not None else pendulum.now("UTC")
        event = RunEvent(copy.deepcopy(flow_run), old_state, new_state, message, deployment, now)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            with self._lock:
                self._dropped += 1
                dropped = self._dropped
            if dropped == 1 or dropped % 1000 == 0:
                log.warning("run events: %d event(s) dropped, the listeners are not keeping up", dropped)

    @property
    def pending(self) -> int:
        """Events queued and not yet delivered."""
        return self._queue.qsize()

    @property
    def delivered(self) -> int:
        return self._delivered

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or, after it died, restart) the run-events thread."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="run-events", daemon=True)
            self._thread.start()

    def alive(self) -> bool:
        return self._thread is None or self._thread.is_alive() or self._stopping

    def stop(self, deadline: float) -> bool:
        """Deliver what is queued, at most until ``deadline``; True if everything was delivered."""
        self._stopping = True
        if self._thread is None:
            return self._queue.empty()
        if self._thread.is_alive():
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
            except queue.Full:
                pass
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            current = self._current
            where = f" (inside {current[0]} for {time.monotonic() - current[1]:.0f}s)" if current else ""
            log.warning("run events: %d event(s) not delivered before the shutdown deadline%s", self.pending, where)
            return False
        return True

    # --- the run-events thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            event = self._queue.get()
            if event is None:
                return
            self._deliver(event)
            self._delivered += 1

    def _deliver(self, event: RunEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            name = getattr(callback, "__qualname__", repr(callback))
            self._call(f"run-event listener {name}", lambda cb=callback: cb(event))  # type: ignore[misc]
        if self._pm is None:
            return
        for name, caller in plugin_callers(self._pm, HOOK):
            self._call(
                f"{HOOK} hook of plugin {name!r}",
                lambda c=caller: c(  # type: ignore[misc]
                    flow_run=event.flow_run,
                    old_state=event.old_state,
                    new_state=event.new_state,
                    message=event.message,
                    deployment=event.deployment,
                    agent=self._agent,
                ),
            )

    def _call(self, what: str, fn: Callable[[], Any]) -> None:
        started = time.monotonic()
        self._current = (what, started)
        try:
            fn()
        except Exception:
            log.exception("%s failed", what)
        finally:
            self._current = None
        took = time.monotonic() - started
        if took > self.slow_after:
            log.warning("%s took %.1fs (run events wait for it; keep it under %.0fs)", what, took, self.slow_after)
