"""A token bucket shared by threads: how many task definitions the agent may register, and when."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateBudget:
    """``rate`` tokens per second, at most ``burst`` saved up; :meth:`acquire` blocks until one is free.

    The clock and the sleep are injected, so tests assert the schedule without sleeping.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds spent waiting in acquire, in total (the bench prints it)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take a token, waiting for one if needed; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    self.waited += waited
                    return waited
                pause = (1 - self._tokens) / self.rate
            # Outside the lock: other threads queue on the bucket, not on a sleeping holder.
            self._sleep(pause)
            waited += pause
