"""Shipping run logs to the API in batches from a background thread.

Backends write a line at a time; sending each as its own request would cost a round trip per
line. Entries are queued and flushed every ``interval`` or ``batch`` entries. If the API is
away the entries are kept (bounded) and sent when it returns.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import pendulum

from agent_core.client import APIClient
from agent_core.errors import APIError, APIUnavailable

log = logging.getLogger(__name__)

# The API's limit on one log message (server/schemas.py LogEntrySchema).
MAX_MESSAGE = 100_000


class RunLogShipper:
    def __init__(self, client: APIClient, name: str, *, interval: float = 0.5, max_buffer: int = 100_000) -> None:
        self.client = client
        self.name = name
        self.interval = interval
        self._buffer: deque[dict[str, Any]] = deque(maxlen=max_buffer)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="run-logs", daemon=True)

    def start(self) -> None:
        """Start (or, after it died, restart) the shipping thread."""
        if self._thread.ident is not None:
            self._thread = threading.Thread(target=self._run, name="run-logs", daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """False once the shipping thread ended without being stopped."""
        return self._thread.ident is None or self._thread.is_alive() or self._stop.is_set()

    def write(self, flow_run_id: str, message: str, level: str = "INFO") -> None:
        """Queue a log entry; a message longer than the API takes is split into several."""
        stamp = pendulum.now("UTC").isoformat()
        pieces = [message[i : i + MAX_MESSAGE] for i in range(0, len(message), MAX_MESSAGE)] or [""]
        with self._lock:
            for piece in pieces:
                self._buffer.append(
                    {
                        "flow_run_id": flow_run_id,
                        "message": piece,
                        "level": level,
                        "name": self.name,
                        "timestamp": stamp,
                    }
                )
            self._idle.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        """Ask for a flush now and wait until the buffer is empty; False on timeout."""
        self._wake.set()
        return self._idle.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        if not self._thread.is_alive():
            self._send()  # never started (a failed start-up): send what was written, once
            return
        self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            self._send()

    def _send(self) -> None:
        while True:
            with self._lock:
                batch = list(self._buffer)[:1000]
            if not batch:
                self._idle.set()
                return
            try:
                self.client.write_logs(batch)
            except APIUnavailable as exc:
                log.debug("run logs kept until the API returns: %s", exc)
                return
            except APIError:
                # One bad entry (an unknown run, a refused message) must not sink the others.
                if not self._send_one_by_one(batch):
                    return
            with self._lock:
                for _ in range(len(batch)):
                    if self._buffer:
                        self._buffer.popleft()

    def _send_one_by_one(self, batch: list[dict[str, Any]]) -> bool:
        """Send each entry alone, dropping the refused ones; False if the API went away."""
        for entry in batch:
            try:
                self.client.write_logs([entry])
            except APIUnavailable:
                return False  # all are kept and sent again: a few may then appear twice
            except APIError as exc:
                log.warning("dropping a log entry of run %s the API refused: %s", entry["flow_run_id"], exc)
        return True
