"""A backend's record files under its ``state_dir``: small JSON objects that outlive the agent.

A restarted agent reads them back (a run's output cursor, how its workload ended), so a write
must never leave half a file: it goes to a temporary file that then replaces the record in one
step. A record that is missing, unreadable or not a JSON object reads as none: the backend
starts that record afresh rather than failing the run.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any


def write_record(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` as JSON, atomically; the folder is made again if it was removed."""
    text = json.dumps(data)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
    except FileNotFoundError:
        # The state directory was removed under a running agent: recreate it, keep the record.
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
    os.replace(tmp, path)


def read_record(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class AcknowledgedRecord:
    """A run's record that two threads save: the monitor (how the workload ended) and the
    run-logs thread (how far the API acknowledged the output). Once removed it is never written
    back, whichever thread comes last.

    For dataclasses with the fields ``path``, ``shipped`` (the acknowledged cursor), ``_lock``
    and ``_removed``; ``_data()`` says what the file keeps.
    """

    path: Path
    shipped: Any
    _lock: threading.Lock
    _removed: bool

    def _data(self) -> dict[str, Any]:
        raise NotImplementedError

    def acknowledge(self, cursor: Any) -> None:
        """The API has the output up to ``cursor``: keep it (``on_shipped`` of the last item queued)."""
        with self._lock:
            if self._removed:
                return  # forgotten meanwhile: do not bring the file back
            self.shipped = cursor
        self.save()

    def save(self) -> None:
        with self._lock:
            if not self._removed:
                write_record(self.path, self._data())

    def remove(self) -> None:
        with self._lock:
            self._removed = True
            self.path.unlink(missing_ok=True)
