"""The agent's owned parts and the supervisor that starts, watches and stops them.

A part is one piece of the running agent with a life of its own: the poll loop, the deploy
threads, the monitor, the heartbeat... Each has the :class:`Part` shape. The
:class:`Supervisor` starts parts in order, stops them in reverse within one deadline, and
in between watches them: a part whose thread died is restarted after a pause, and one that
keeps dying ends the agent with :class:`PartFailed` (a non-zero exit) instead of leaving it
half alive.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agent_core.errors import AgentError

log = logging.getLogger(__name__)

# Pauses before the 1st, 2nd and 3rd restart of a part that died; one more death within
# RESTART_WINDOW seconds of the first ends the agent.
RESTART_DELAYS = (1.0, 2.0, 4.0)
RESTART_WINDOW = 60.0
# How often the supervisor looks at its parts.
WATCH_INTERVAL = 0.2


@runtime_checkable
class Part(Protocol):
    """What the supervisor needs of a part.

    ``start()`` may be called again after the part died (a restart). ``stop(deadline)`` returns
    by ``deadline`` (a :func:`time.monotonic` value) even if the part has not finished; a part
    never started stops at once. ``alive()`` is False once its thread ended unexpectedly.
    """

    name: str

    def start(self) -> None: ...

    def stop(self, deadline: float) -> None: ...

    def alive(self) -> bool: ...


class PartFailed(AgentError):
    """A part kept dying: the agent stopped rather than run on without it."""


def remaining(deadline: float) -> float:
    """Seconds left until ``deadline`` (never negative), for a join or a wait."""
    return max(0.0, deadline - time.monotonic())


class Step:
    """A part made of callables: something done at start and undone at stop; ``alive``
    (default: always) for one whose work goes on on a thread of its own."""

    def __init__(
        self,
        name: str,
        start: Callable[[], None],
        stop: Callable[[float], None],
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self._start = start
        self._stop = stop
        self._alive = alive

    def start(self) -> None:
        self._start()

    def stop(self, deadline: float) -> None:
        self._stop(deadline)

    def alive(self) -> bool:
        return self._alive is None or self._alive()


class LoopThread:
    """A part whose work is a loop on one daemon thread, stopped through its own event.

    Subclasses implement :meth:`run`, which returns once ``self.stopped`` is set. An exception
    escaping it (a bug, or a plugin raising ``SystemExit``) ends the thread: logged with the
    part's name, and :meth:`alive` answers False until the supervisor restarts it.
    """

    name = "loop"

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.finished = False  # run() returned on its own (its work is done): not a death

    def run(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self.error = None
        self.finished = False
        self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
            self.finished = True
        except BaseException as exc:  # the supervisor decides what happens next
            self.error = exc
            log.error("the %s thread died: %s: %s", self.name, type(exc).__name__, exc, exc_info=exc)

    def wake(self) -> None:
        """Interrupt the loop's wait (the stop calls it after setting ``stopped``)."""

    def stop(self, deadline: float) -> None:
        self.stopped.set()
        self.wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(remaining(deadline))
            if self._thread.is_alive():
                log.warning("the %s thread did not stop in time; leaving it behind", self.name)

    def alive(self) -> bool:
        thread = self._thread
        return thread is None or thread.is_alive() or self.finished or self.stopped.is_set()


@dataclass
class _Entry:
    part: Part
    stop_within: float | None
    deaths: list[float] = field(default_factory=list)
    restart_at: float | None = None
    failed: bool = False


class Supervisor:
    """Starts parts in order, watches them, and stops them in reverse within one deadline.

    ``on_failure`` is called (once, on the watching thread) when a part keeps dying; the agent
    stops then and :attr:`failure` says why.
    """

    def __init__(self, on_failure: Callable[[PartFailed], None] | None = None) -> None:
        self._entries: list[_Entry] = []
        self._lock = threading.Lock()
        self._on_failure = on_failure
        self.failure: PartFailed | None = None
        self.stop_order: list[str] = []  # names, as they were stopped (for the log and tests)

    @property
    def names(self) -> list[str]:
        """The started parts, in start order."""
        with self._lock:
            return [entry.part.name for entry in self._entries]

    def start(self, part: Part, *, stop_within: float | None = None) -> None:
        """Start ``part``; ``stop_within`` caps the time its stop gets (within the deadline).

        The part is listed before it starts, so that one whose start raised half-way (an
        ``on_startup`` hook after others ran) is still stopped.
        """
        with self._lock:
            self._entries.append(_Entry(part, stop_within))
        log.debug("starting %s", part.name)
        part.start()

    # --- watching -------------------------------------------------------------------------

    def watch(self, stopping: threading.Event, interval: float = WATCH_INTERVAL) -> None:
        """Look after the parts until ``stopping`` is set (on the calling thread)."""
        while not stopping.wait(interval):
            self.check(stopping)

    def check(self, stopping: threading.Event | None = None) -> None:
        """One look: restart the parts due for it, note the ones that died."""
        now = time.monotonic()
        with self._lock:
            entries = list(self._entries)
        for entry in entries:
            if stopping is not None and stopping.is_set():
                return  # parts end as the agent stops: not deaths
            if entry.failed:
                continue
            if entry.restart_at is not None:
                if now >= entry.restart_at:
                    self._restart(entry)
                continue
            if not entry.part.alive():
                self._died(entry, now)

    def _died(self, entry: _Entry, now: float) -> None:
        name = entry.part.name
        entry.deaths = [t for t in entry.deaths if now - t < RESTART_WINDOW] + [now]
        count = len(entry.deaths)
        if count > len(RESTART_DELAYS):
            entry.failed = True
            failure = PartFailed(
                f"the {name} part died {count} times within {RESTART_WINDOW:.0f}s: stopping the agent "
                "(see the errors above for why)"
            )
            log.error("%s", failure)
            if self.failure is None:
                self.failure = failure
                if self._on_failure is not None:
                    self._on_failure(failure)
            return
        delay = RESTART_DELAYS[count - 1]
        log.error("the %s part is not running (death %d); restarting it in %.0fs", name, count, delay)
        entry.restart_at = now + delay

    def _restart(self, entry: _Entry) -> None:
        entry.restart_at = None
        try:
            entry.part.start()
        except Exception as exc:
            log.error("restarting the %s part failed: %s", entry.part.name, exc)
            self._died(entry, time.monotonic())
            return
        log.warning("restarted the %s part", entry.part.name)

    def problems(self, *, stopping: bool) -> dict[str, str]:
        """Parts not running, by name (liveness); while stopping only the ones that failed for good."""
        found: dict[str, str] = {}
        with self._lock:
            entries = list(self._entries)
        for entry in entries:
            name = entry.part.name
            if entry.failed:
                found[name] = f"the {name} thread kept dying: the agent is stopping"
            elif stopping:
                continue
            elif entry.restart_at is not None:
                wait = max(0.0, entry.restart_at - time.monotonic())
                found[name] = f"the {name} thread died; restarting it in {wait:.0f}s"
            elif not entry.part.alive():
                found[name] = f"the {name} thread is not running"
        return found

    # --- stopping -------------------------------------------------------------------------

    def stop(self, deadline: float) -> None:
        """Stop every started part in reverse order; each returns by ``deadline`` (or its cap)."""
        with self._lock:
            entries = list(reversed(self._entries))
        for entry in entries:
            part = entry.part
            own = deadline if entry.stop_within is None else min(deadline, time.monotonic() + entry.stop_within)
            started = time.monotonic()
            try:
                part.stop(own)
            except Exception:
                log.exception("stopping the %s part failed", part.name)
            self.stop_order.append(part.name)
            log.debug("stopped %s in %.1fs", part.name, time.monotonic() - started)
