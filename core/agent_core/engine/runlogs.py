"""Run logs: every line the agent or a workload writes to a run's logs, sent in batches.

Backends write a line at a time, on the deploy and monitor threads; a request per line would
hold those threads for a round trip each and flood the API. :meth:`RunLogs.write` only queues
the line (masked on the way out, see :mod:`agent_core.masking`); the ``run-logs`` thread sends
what is queued as one ``POST /api/logs`` batch once :data:`FLUSH_INTERVAL` has passed or
:data:`BATCH_LINES` lines wait, in the order they were written (so each run's lines stay in
order). While the API is away the lines are kept and sent again with the 0.25 -> 10 s backoff.

A line counts as shipped only once the API answered for its batch: a writer that keeps its own
position in a workload's output (the local backend's run directory) passes ``on_shipped`` and
moves that position when it is called, so that lines still queued when the agent exits are read
and sent again by the agent that re-attaches to the run, never lost.

Memory is bounded: beyond :data:`MAX_QUEUED_LINES` lines or :data:`MAX_QUEUED_BYTES` of messages
waiting (a long outage with much output), the oldest lines are dropped, and each run that lost
some gets a WARNING line saying how many when sending resumes.

The part's shape is the engine's (``name``, ``start()``, ``stop(deadline)``, ``alive()``);
:meth:`RunLogs.flush` waits, until a deadline, for what was written to reach the API.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pendulum

from agent_core.client import APIClient
from agent_core.engine.backoff import Backoff
from agent_core.errors import APIError, APIUnavailable
from agent_core.masking import SecretMasker

log = logging.getLogger(__name__)

# The API's limit on one log message (server/schemas.py LogEntrySchema): longer ones are split.
MAX_MESSAGE = 100_000
#: A batch is sent this long (seconds) after its first line was written, at the latest.
FLUSH_INTERVAL = 0.2
#: ... or as soon as this many lines wait (also the most one request carries).
BATCH_LINES = 1000
#: The most lines kept unsent (an API outage): beyond it the oldest are dropped, and counted.
MAX_QUEUED_LINES = 100_000
#: The most message characters kept unsent, whatever the number of lines.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
#: The longest pause between two tries while the API is away.
MAX_RETRY_DELAY = 10.0

Callback = Callable[[], None]


@dataclass
class _Line:
    seq: int
    flow_run_id: str
    message: str
    level: str
    timestamp: str
    on_shipped: Callback | None


class RunLogs:
    """The agent's run logs: :meth:`write` queues, the ``run-logs`` thread sends in batches."""

    name = "run-logs"

    def __init__(
        self,
        client: APIClient,
        agent_name: str,
        *,
        masker: SecretMasker | None = None,
        interval: float = FLUSH_INTERVAL,
        batch_lines: int = BATCH_LINES,
        max_lines: int = MAX_QUEUED_LINES,
        max_bytes: int = MAX_QUEUED_BYTES,
        logger: logging.Logger | None = None,
    ) -> None:
        self.client = client
        self.agent_name = agent_name
        self.masker = masker or SecretMasker()
        self.interval = interval
        self.batch_lines = batch_lines
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.logger = logger or log
        self._queue: deque[_Line] = deque()
        self._queued_bytes = 0
        self._seq = 0
        # How many lines at the head of the queue are being sent now (never dropped meanwhile).
        self._sending = 0
        # Lines dropped beyond the cap, per run, not yet reported in that run's logs.
        self._dropped: OrderedDict[str, int] = OrderedDict()
        self.dropped_total = 0
        self._cond = threading.Condition()
        self._wake = threading.Event()  # a full batch, a flush or a stop: send now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- writing --------------------------------------------------------------------------

    def write(self, flow_run_id: str, message: str, level: str = "INFO", *, on_shipped: Callback | None = None) -> None:
        """Queue a line for the run's logs; never waits for the API.

        :param on_shipped: called (on the ``run-logs`` thread) once the API has this line and
            every line written before it, or refused it as invalid. Not called for a line
            dropped beyond the cap, nor if the agent exits first.
        """
        stamp = pendulum.now("UTC").isoformat()
        with self._cond:
            self._seq += 1
            self._queue.append(_Line(self._seq, flow_run_id, message, level, stamp, on_shipped))
            self._queued_bytes += len(message)
            self._drop_beyond_cap()
            if len(self._queue) >= self.batch_lines:
                self._wake.set()
            self._cond.notify_all()

    def _drop_beyond_cap(self) -> None:
        """Drop the oldest lines not being sent while over the cap (the lock is held)."""
        while len(self._queue) > self._sending + 1 and (
            len(self._queue) > self.max_lines or self._queued_bytes > self.max_bytes
        ):
            line = self._queue[self._sending]
            del self._queue[self._sending]
            self._queued_bytes -= len(line.message)
            self._dropped[line.flow_run_id] = self._dropped.get(line.flow_run_id, 0) + 1
            if not self.dropped_total:
                self.logger.warning(
                    "run logs: more than %d lines (or %d MB) wait for the API: dropping the oldest",
                    self.max_lines,
                    self.max_bytes // (1024 * 1024),
                )
            self.dropped_total += 1

    @property
    def pending(self) -> int:
        """Lines written and not yet sent."""
        with self._cond:
            return len(self._queue)

    def flush(self, deadline: float) -> bool:
        """Send what is queued now and wait until the API has every line written before this call.

        :param deadline: a ``time.monotonic()`` value; returns then at the latest.
        :return: True when all of them were shipped, False when the deadline came first.
        """
        with self._cond:
            target = self._seq
            if self._settled(target):
                return True
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                pass  # not started (or stopped): sent below, on this thread
            else:
                while not self._settled(target):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._cond.wait(left)
                return True
        while not self._settled(target) and time.monotonic() < deadline:
            if not self._send_queued():
                return False
        return self._settled(target)

    def _settled(self, seq: int) -> bool:
        """Whether every line up to ``seq`` is sent (the lock is held or not needed)."""
        return not self._queue or self._queue[0].seq > seq

    # --- the part -------------------------------------------------------------------------

    def start(self) -> None:
        """Start (or, after it died, restart) the sending thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def alive(self) -> bool:
        """False once the sending thread ended without being stopped (the supervisor restarts it)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def stop(self, deadline: float) -> None:
        """Send what is queued until ``deadline`` (``time.monotonic()``), then end the thread.

        What the API did not take by then is named in the agent's log: workload output is read
        again by the agent that re-attaches to its run (it was never counted as shipped).
        """
        shipped = self.flush(deadline)
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if not shipped:
            self.logger.error(
                "%d run log line(s) did not reach the API before the exit; workload output is sent "
                "again by the agent that re-attaches to its run",
                self.pending,
            )

    # --- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            with self._cond:
                while not self._queue and not self._stop.is_set():
                    self._cond.wait()
            # A batch collects lines for up to one interval, unless it is full or wanted now.
            self._wake.wait(self.interval)
            self._wake.clear()
            try:
                sent = self._send_queued()
            except Exception:  # a bug or an unexpected answer must not end the run logs
                self.logger.exception("run logs: sending failed; trying again")
                with self._cond:
                    self._sending = 0
                sent = False
            if sent:
                backoff = Backoff()
                continue
            delay = min(backoff.next_delay(False), MAX_RETRY_DELAY)
            self.logger.debug("run logs: the API is away; trying again in %.2fs", delay)
            # A flush or a stop ends the pause: a stopping agent tries until its deadline.
            self._wake.wait(delay)

    def _send_queued(self) -> bool:
        """Send queued lines batch by batch until none is left; False if the API is away."""
        while True:
            with self._cond:
                batch = _head(self._queue, self.batch_lines)
                dropped = list(self._dropped.items())
                self._sending = len(batch)
            if not batch and not dropped:
                return True
            try:
                self._send(self._entries(batch, dropped))
            except APIUnavailable as exc:
                self.logger.debug("run logs kept until the API returns: %s", exc)
                with self._cond:
                    self._sending = 0
                return False
            self._settle(batch, dropped)

    def _send(self, entries: list[dict[str, Any]]) -> None:
        try:
            self.client.write_logs(entries)
        except APIUnavailable:
            raise
        except APIError:
            # One bad entry (an unknown run, a refused message) must not sink the others.
            self._send_one_by_one(entries)

    def _entries(self, batch: list[_Line], dropped: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """The API's log entries for ``batch``, masked, after a warning for each run that lost lines."""
        stamp = pendulum.now("UTC").isoformat()
        entries = [
            self._entry(
                run_id,
                f"{count} log line(s) of this run were dropped: more than {self.max_lines} lines "
                f"(or {self.max_bytes // (1024 * 1024)} MB) waited for the API (an outage)",
                "WARNING",
                stamp,
            )
            for run_id, count in dropped
        ]
        messages = self.masker.mask_all([line.message for line in batch])
        for line, message in zip(batch, messages, strict=True):
            pieces = [message[i : i + MAX_MESSAGE] for i in range(0, len(message), MAX_MESSAGE)] or [""]
            entries.extend(self._entry(line.flow_run_id, piece, line.level, line.timestamp) for piece in pieces)
        return entries

    def _entry(self, run_id: str, message: str, level: str, stamp: str) -> dict[str, Any]:
        return {"flow_run_id": run_id, "message": message, "level": level, "name": self.agent_name, "timestamp": stamp}

    def _settle(self, batch: list[_Line], dropped: list[tuple[str, int]]) -> None:
        """``batch`` reached the API: take it off the queue, then tell the writers that asked."""
        with self._cond:
            for run_id, count in dropped:
                left = self._dropped.get(run_id, 0) - count
                if left > 0:
                    self._dropped[run_id] = left
                else:
                    self._dropped.pop(run_id, None)
            for _ in batch:  # the head of the queue: never dropped while being sent
                line = self._queue.popleft()
                self._queued_bytes -= len(line.message)
            self._sending = 0
            self._cond.notify_all()
        for line in batch:
            if line.on_shipped is not None:
                try:
                    line.on_shipped()
                except Exception:
                    self.logger.exception("run logs: a shipped-line callback failed")

    def _send_one_by_one(self, entries: list[dict[str, Any]]) -> None:
        """Send each entry alone, dropping the refused ones; APIUnavailable if the API went away
        (then all are kept and sent again: a few may appear twice)."""
        for entry in entries:
            try:
                self.client.write_logs([entry])
            except APIUnavailable:
                raise
            except APIError as exc:
                self.logger.warning("dropping a log entry of run %s the API refused: %s", entry["flow_run_id"], exc)


def _head(queue: deque[_Line], count: int) -> list[_Line]:
    out = []
    for line in queue:
        if len(out) >= count:
            break
        out.append(line)
    return out
