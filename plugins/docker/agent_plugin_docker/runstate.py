"""What the agent remembers about each container, on disk so that a restarted agent knows it too.

One small JSON file per container, ``<state_dir>/<run id>-<attempt>.json``:

- ``cursor``: the engine timestamp of the last output line the API acknowledged (in the run's
  logs), and how many lines carried exactly that timestamp. A restarted agent ships from there
  on, so no line is lost or sent twice (as long as it runs against the same ``state_dir``);
  lines queued but not acknowledged when an agent stopped (an API outage) are sent again.
- ``exit_code`` / ``reason``: how the container ended, once read, so that a container removed
  behind the agent's back (or by its own reaping) still reports its real exit.

The files live outside the containers on purpose: a container's labels cannot change after
creation, and the engine keeps no per-reader position in a log.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_core.statefiles import AcknowledgedRecord, read_record

# Engine log timestamps are RFC 3339 with up to nine fractional digits (trailing zeros cut).
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")

LogKey = tuple[int, int]


def timestamp_key(stamp: str) -> LogKey | None:
    """``(epoch seconds, nanoseconds)`` of an engine timestamp, or None if it is not one."""
    match = _TIMESTAMP.match(stamp)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    seconds = int(datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone)).timestamp())
    return seconds, int((fraction or "").ljust(9, "0"))


@dataclass(frozen=True)
class LogLine:
    stamp: str
    key: LogKey
    text: str


def parse_log(raw: bytes) -> list[LogLine]:
    """Split ``logs(timestamps=True)`` output into lines, each with its engine timestamp."""
    lines: list[LogLine] = []
    for chunk in raw.decode("utf-8", errors="replace").split("\n"):
        if not chunk:
            continue
        stamp, _, text = chunk.partition(" ")
        key = timestamp_key(stamp)
        if key is None:
            # Not a log entry of its own (should not happen): keep the text with the previous one.
            if lines:
                last = lines[-1]
                lines[-1] = LogLine(last.stamp, last.key, f"{last.text}\n{chunk}")
            continue
        lines.append(LogLine(stamp, key, text.removesuffix("\r")))
    return lines


@dataclass
class Cursor:
    """Where shipping stopped: the last shipped line's timestamp, and how many shared it."""

    stamp: str = ""
    count: int = 0

    @property
    def key(self) -> LogKey | None:
        return timestamp_key(self.stamp) if self.stamp else None

    def since(self) -> int | None:
        """The ``since`` to ask the engine for: a second before the cursor's, whole seconds.

        Whole seconds avoid float rounding at nanosecond scale; the extra second of lines is
        skipped again by :meth:`unshipped`, and also covers stdout and stderr lines whose
        timestamps are slightly out of file order.
        """
        key = self.key
        return None if key is None else max(key[0] - 1, 1)

    def unshipped(self, lines: list[LogLine]) -> list[LogLine]:
        """The lines after the cursor, in the engine's order."""
        key = self.key
        if key is None:
            return lines
        seen = 0
        for index, line in enumerate(lines):
            if line.key == key:
                seen += 1
                if seen == self.count:
                    return lines[index + 1 :]
        # The cursor's line is gone (log rotated or truncated): fall back to the time order.
        return [line for line in lines if line.key > key]

    def advance(self, lines: list[LogLine], shipped: list[LogLine]) -> None:
        """Move past ``shipped``, the tail of ``lines`` (everything fetched in this round)."""
        if not shipped:
            return
        last = shipped[-1].key
        self.stamp = shipped[-1].stamp
        # `lines` starts a second before the old cursor, so it holds every line of that instant.
        self.count = sum(1 for line in lines if line.key == last)


@dataclass
class RunState(AcknowledgedRecord):
    """The file of one container (see the module docstring)."""

    path: Path
    #: how far output was queued for the run's logs (in memory: each line is queued once)
    cursor: Cursor = field(default_factory=Cursor)
    #: how far the API acknowledged it (what the file keeps)
    shipped: Cursor = field(default_factory=Cursor)
    exit_code: int | None = None
    reason: str = ""
    # Not saved: whether the run was told that its output cannot be read back.
    warned: bool = False
    # The monitor (exit code) and the run-logs thread (acknowledgements) both save.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _removed: bool = False

    @classmethod
    def load(cls, state_dir: Path, key: str) -> RunState:
        path = state_dir / f"{key}.json"
        state = cls(path)
        data = read_record(path)
        if data is None:
            return state
        cursor = data.get("cursor") or {}
        state.shipped = Cursor(str(cursor.get("stamp", "")), int(cursor.get("count", 0)))
        state.cursor = Cursor(state.shipped.stamp, state.shipped.count)
        code = data.get("exit_code")
        state.exit_code = int(code) if code is not None else None
        state.reason = str(data.get("reason", ""))
        return state

    def _data(self) -> dict[str, Any]:
        return {
            "cursor": {"stamp": self.shipped.stamp, "count": self.shipped.count},
            "exit_code": self.exit_code,
            "reason": self.reason,
        }
