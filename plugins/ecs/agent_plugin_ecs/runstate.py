"""What the agent remembers about each task, on disk so that a restarted agent knows it too.

One small JSON file per run attempt, ``<state_dir>/<run id>-<attempt>.json``:

- ``cursor``: how far the task's CloudWatch stream reached the run's logs (acknowledged by the
  API: lines queued when an agent stopped during an outage are read and sent again): the
  ``nextForwardToken`` to read on from, and as a fallback should AWS refuse the token
  (expired), the timestamp of the last event shipped and how many events carried it.
- ``exit_code`` / ``reason``: how the task ended, once read, so that the answer survives the
  task leaving ECS's memory (about an hour after it stops).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent_core.statefiles import AcknowledgedRecord, read_record


@dataclass
class Cursor:
    token: str = ""
    timestamp: int = 0
    count: int = 0

    def advance(self, events: list[dict[str, Any]]) -> None:
        """Move past ``events`` (in stream order)."""
        for event in events:
            stamp = int(event.get("timestamp", 0))
            if stamp == self.timestamp:
                self.count += 1
            else:
                self.timestamp, self.count = stamp, 1


@dataclass
class TaskRecord(AcknowledgedRecord):
    path: Path
    #: how far the stream was queued for the run's logs (in memory: each event is queued once)
    cursor: Cursor = field(default_factory=Cursor)
    #: how far the API acknowledged it (what the file keeps)
    shipped: Cursor = field(default_factory=Cursor)
    exit_code: int | None = None
    reason: str = ""
    # Not saved: once-per-process notes and timers.
    warned: set[str] = field(default_factory=set)
    shipped_at: float = float("-inf")
    # The monitor (exit code) and the run-logs thread (acknowledgements) both save.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _removed: bool = False

    @property
    def final(self) -> bool:
        return self.exit_code is not None

    @classmethod
    def load(cls, state_dir: Path, key: str) -> TaskRecord:
        record = cls(state_dir / f"{key}.json")
        data = read_record(record.path)
        if data is None:
            return record
        cursor = data.get("cursor") or {}
        record.shipped = Cursor(
            str(cursor.get("token", "")), int(cursor.get("timestamp", 0)), int(cursor.get("count", 0))
        )
        record.cursor = replace(record.shipped)
        code = data.get("exit_code")
        record.exit_code = int(code) if code is not None else None
        record.reason = str(data.get("reason", ""))
        return record

    def _data(self) -> dict[str, Any]:
        shipped = self.shipped
        return {
            "cursor": {"token": shipped.token, "timestamp": shipped.timestamp, "count": shipped.count},
            "exit_code": self.exit_code,
            "reason": self.reason,
        }
