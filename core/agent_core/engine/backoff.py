"""The poll loop's schedule: at once after work was found, else 0.25, 0.5, 1, 2, 4, 8, 10 s."""

from __future__ import annotations

from collections.abc import Sequence

POLL_INTERVALS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0)


class Backoff:
    """Found work: poll again at once and start the schedule over. An empty (or failed) poll
    waits the next interval of the schedule, staying on the last one once there."""

    def __init__(self, intervals: Sequence[float] = POLL_INTERVALS) -> None:
        self.intervals = tuple(intervals)
        self.index = 0

    def next_delay(self, found_work: bool) -> float:
        if found_work:
            self.index = 0
            return 0.0
        delay = self.intervals[self.index]
        self.index = min(self.index + 1, len(self.intervals) - 1)
        return delay
