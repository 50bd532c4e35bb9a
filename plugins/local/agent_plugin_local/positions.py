"""How far each run's output was queued for the API, and recording how far the API has it."""

from __future__ import annotations

import contextlib
import threading

from agent_plugin_local.rundir import RunDir


class OutputPositions:
    """The queued position in each run's ``output.log`` (``run dir name -> offset``), in memory.

    The acknowledged position is the run directory's ``shipped`` file: it survives the agent.
    A run is in the map only while some of its queued output waits for the API.
    """

    def __init__(self) -> None:
        # Held while a run's output is read and queued. Re-entrant: with output off for a run,
        # the acknowledgement comes at once, from inside the shipping.
        self.lock = threading.RLock()
        self._queued: dict[str, int] = {}

    def queued(self, rd: RunDir) -> int:
        """Where to read ``rd``'s output from: past what was queued, else past what was shipped."""
        with self.lock:
            found = self._queued.get(rd.key)
        return rd.shipped() if found is None else found

    def mark_queued(self, rd: RunDir, offset: int) -> None:
        with self.lock:
            self._queued[rd.key] = offset

    def acknowledged(self, rd: RunDir, offset: int) -> None:
        """The API has ``rd``'s output up to ``offset``: record it in the run directory."""
        with self.lock:
            with contextlib.suppress(OSError):  # the run directory was removed meanwhile
                if offset > rd.shipped():
                    rd.set_shipped(offset)
            if self._queued.get(rd.key) == offset:
                del self._queued[rd.key]  # all acknowledged: the file tells from now on
