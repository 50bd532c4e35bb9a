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


class DeployPool:
    def __init__(self, workers: int, name: str = "deploy") -> None:
        self._tasks: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = queue.Queue()
        self._pending = 0
        self._lock = threading.Condition()
        self.workers = max(1, workers)
        self._name = name
        # Started on the first submit: an agent built only for `agent doctor` starts none.
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            if not self._threads:
                self._threads = [
                    threading.Thread(target=self._work, name=f"{self._name}-{i}", daemon=True)
                    for i in range(self.workers)
                ]
                for thread in self._threads:
                    thread.start()
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
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        for _ in self._threads:
            self._tasks.put(None)
        return True
