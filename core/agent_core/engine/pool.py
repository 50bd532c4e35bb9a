"""A bounded pool of daemon deploy threads that can be drained with a deadline.

Unlike ``ThreadPoolExecutor`` its threads never hold up interpreter exit, so a deploy stuck
past ``--drain-timeout`` cannot keep a stopping agent alive.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


# How often a drain says what it still waits for.
PROGRESS_EVERY = 5.0


class DeployPool:
    """The deployer part (:mod:`agent_core.engine.parts`): its stop is the drain.

    ``progress(left)``, if given, is called when a drain starts and every ``PROGRESS_EVERY``
    seconds while it waits, with the seconds left, so the agent can say what it waits for.
    """

    name = "deployer"

    def __init__(self, workers: int, name: str = "deploy", *, progress: Callable[[float], None] | None = None) -> None:
        self._tasks: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Condition()
        self.workers = max(1, workers)
        self._name = name
        self._progress = progress
        self._stopped = False
        # Started on the first submit (or start()): an agent built only for `agent doctor` starts none.
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the worker threads, or replace the ones that died."""
        with self._lock:
            self._start_workers()

    def _start_workers(self) -> None:
        if self._stopped:
            return
        if not self._threads:
            self._threads = [
                threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True) for i in range(self.workers)
            ]
            for thread in self._threads:
                thread.start()
            return
        for i, thread in enumerate(self._threads):
            if not thread.is_alive():
                self._threads[i] = threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                self._threads[i].start()

    def alive(self) -> bool:
        with self._lock:
            return self._stopped or all(thread.is_alive() for thread in self._threads)

    def stop(self, deadline: float) -> None:
        """Drain: wait for the submitted tasks until ``deadline`` (``time.monotonic()``); on time
        out ``progress(0)`` says so and the tasks left run on (daemon threads never hold the exit)."""
        if not self.drain(max(0.0, deadline - time.monotonic())) and self._progress is not None:
            self._progress(0.0)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if not self._threads:
                self._start_workers()
            self._pending += 1
        self._tasks.put((fn, args))

    @property
    def pending(self) -> int:
        with self._lock:
            return self._pending

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            except Exception:
                log.exception("deploy task failed unexpectedly")
            finally:
                with self._lock:
                    self._pending -= 1
                    self._lock.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted task has finished, at most ``timeout`` s; True if all did."""
        deadline = time.monotonic() + timeout
        report_at = time.monotonic()
        with self._lock:
            while self._pending:
                now = time.monotonic()
                remaining = deadline - now
                if remaining <= 0:
                    return False
                if self._progress is not None and now >= report_at:
                    report_at = now + PROGRESS_EVERY
                    self._lock.release()  # the report reads figures that take this lock
                    try:
                        self._progress(remaining)
                    finally:
                        self._lock.acquire()
                    continue
                self._lock.wait(min(remaining, max(0.0, report_at - now)) if self._progress else remaining)
            self._stopped = True
        for _ in self._threads:
            self._tasks.put(None)
        return True
