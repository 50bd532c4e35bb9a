"""What the agent remembers about each task, on disk so that a restarted agent knows it too.

One small JSON file per run attempt, ``<state_dir>/<run id>-<attempt>.json``:

- ``cursor``: how far the task's CloudWatch stream was shipped to the run's logs: the
  ``nextForwardToken`` to read on from, and as a fallback should AWS refuse the token
  (expired), the timestamp of the last event shipped and how many events carried it.
- ``exit_code`` / ``reason``: how the task ended, once read, so that the answer survives the
  task leaving ECS's memory (about an hour after it stops).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_core.statefiles import read_record, write_record


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
class TaskRecord:
    path: Path
    cursor: Cursor = field(default_factory=Cursor)
    exit_code: int | None = None
    reason: str = ""
    # Not saved: once-per-process notes and timers.
    warned: set[str] = field(default_factory=set)
    shipped_at: float = float("-inf")

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
        record.cursor = Cursor(
            str(cursor.get("token", "")), int(cursor.get("timestamp", 0)), int(cursor.get("count", 0))
        )
        code = data.get("exit_code")
        record.exit_code = int(code) if code is not None else None
        record.reason = str(data.get("reason", ""))
        return record

    def save(self) -> None:
        data = {
            "cursor": {"token": self.cursor.token, "timestamp": self.cursor.timestamp, "count": self.cursor.count},
            "exit_code": self.exit_code,
            "reason": self.reason,
        }
        write_record(self.path, data)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
