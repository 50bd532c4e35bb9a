"""The sweep every API server runs: expired agent leases and runs stuck Cancelling.

An agent's claim on its runs lasts while it heartbeats: each heartbeat (and its registration)
sets its lease to ``max(agent_lease_seconds, 3 * heartbeat_period)`` from now. Every
``interval`` seconds the sweep recovers the runs of agents whose lease ran out
(:meth:`Store.expire_leases`) and cancels runs Cancelling for longer than
``cancelling_timeout_seconds`` that no live agent holds (:meth:`Store.expire_cancelling`).

Several servers on one PostgreSQL database all sweep; each recovery is a version-checked state
change, so exactly one of them recovers a run (and writes its retry) and the others skip it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from agent_core.server.storage import Store

log = logging.getLogger(__name__)


def sweep_interval(lease_seconds: float) -> float:
    """How often to sweep: a quarter of the lease, between 0.2 s and 15 s."""
    return min(15.0, max(0.2, lease_seconds / 4))


class LeaseSweeper:
    """A daemon thread sweeping the store every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, store: Store, *, lease_seconds: float, cancelling_timeout_seconds: float) -> None:
        self.store = store
        self.interval = sweep_interval(lease_seconds)
        self.cancelling_timeout_seconds = cancelling_timeout_seconds
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.sweeps = 0
        self.recovered: Counter[str] = Counter()  # runs recovered, by the state they were given

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lease-sweep", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.sweep_once()
            except Exception as exc:  # the database is away: the next sweep tries again
                log.warning("lease sweep failed: %s", exc)

    def sweep_once(self) -> None:
        for done in self.store.expire_leases():
            self.recovered[done["to"]] += 1
            log.warning(
                "recovered run %s of an agent whose lease expired: %s -> %s", done["id"], done["from"], done["to"]
            )
        for run_id in self.store.expire_cancelling(self.cancelling_timeout_seconds):
            self.recovered["Cancelled"] += 1
            log.warning("run %s was Cancelling with no live agent: marked Cancelled", run_id)
        self.sweeps += 1
