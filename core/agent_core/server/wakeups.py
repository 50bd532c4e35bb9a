"""Waking long polls: who waits for runs of which tenant and labels, and what wakes them.

A waiting ``POST /api/queue`` registers a :class:`Waiter` (tenant, labels, an event) and
sleeps on its event. Three things set it:

- a commit on this server that made a run ready (the store's ready listener, at once);
- on PostgreSQL, a ``NOTIFY`` from any server or process writing to the same database
  (``LISTEN`` on one connection per server, so a run created through server A wakes a request
  waiting on server B);
- on SQLite, a new Scheduled entry in the state history seen by a watcher that looks twice a
  second, so a run created by another process on the same file (the embedded CLI) wakes it.

Only waiters whose labels cover the run's labels are woken, so one run does not make every
idle agent query the database. The number of waiters is bounded (``long_poll_slots``): the
server gives waiting requests their own worker threads, and a request past the bound is
answered at once as a plain poll, so waiters never take the threads ordinary requests need.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from agent_core.server.storage import schema as t
from agent_core.server.storage.store import READY_CHANNEL
from agent_core.states import State

log = logging.getLogger(__name__)

SQLITE_WATCH_INTERVAL = 0.5
_RECONNECT_DELAYS = (0.5, 1, 2, 5)


@dataclass(eq=False)
class Waiter:
    tenant_id: str
    labels: frozenset[str]
    event: threading.Event = field(default_factory=threading.Event)

    def covers(self, tenant_id: str, labels: list[str] | None) -> bool:
        return tenant_id == self.tenant_id and (labels is None or self.labels.issuperset(labels))


class Wakeups:
    """The waiters of one server, and the source (LISTEN or watcher) that wakes them across processes."""

    def __init__(self, engine: Engine, slots: int) -> None:
        self.engine = engine
        self.slots = slots
        self._lock = threading.Lock()
        self._waiters: set[Waiter] = set()
        self._source: _Source | None = None
        self._closed = False
        self.refused = 0  # long polls answered at once because every slot was taken

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def closed(self) -> bool:
        """The server is stopping: waits end now, new ones are answered at once."""
        return self._closed

    @contextlib.contextmanager
    def waiter(self, tenant_id: str, labels: list[str]) -> Iterator[Waiter | None]:
        """A registered waiter for the duration of the block; None when every slot is taken."""
        with self._lock:
            if len(self._waiters) >= self.slots or self._closed:
                self.refused += 1
                waiter = None
            else:
                waiter = Waiter(tenant_id, frozenset(labels))
                self._waiters.add(waiter)
        if waiter is None:
            if not self._closed:
                log.warning("all %d long-poll slots are taken: answering a long poll at once", self.slots)
            yield None
            return
        try:
            self._ensure_source()
            yield waiter
        finally:
            with self._lock:
                self._waiters.discard(waiter)

    def notify(self, tenant_id: str, labels: list[str] | None) -> None:
        """A run ready for ``labels`` (None: any) of the tenant: wake the waiters it concerns."""
        with self._lock:
            for waiter in self._waiters:
                if waiter.covers(tenant_id, labels):
                    waiter.event.set()

    def notify_all(self) -> None:
        with self._lock:
            for waiter in self._waiters:
                waiter.event.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            source, self._source = self._source, None
        self.notify_all()
        if source is not None:
            source.stop()

    def _ensure_source(self) -> None:
        # Started with the first waiter and kept: a server nobody long-polls listens to nothing.
        with self._lock:
            if self._source is not None or self._closed:
                return
            if self.engine.dialect.name == "postgresql":
                self._source = _PostgresListener(self)
            else:
                self._source = _SQLiteWatcher(self)
            source = self._source
        source.start()


class _Source:
    name = "wakeups"

    def __init__(self, wakeups: Wakeups) -> None:
        self.wakeups = wakeups
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()
        # The first waiter checks the queue only once the source listens, so that a run
        # created in between is not missed.
        self.ready.wait(5)

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(5)

    def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                self._serve()
                failures = 0
            except Exception as exc:  # a lost database connection: wait, reconnect, look again
                self.ready.set()
                delay = _RECONNECT_DELAYS[min(failures, len(_RECONNECT_DELAYS) - 1)]
                failures += 1
                log.warning("%s: %s; reconnecting in %ss", self.name, exc, delay)
                self.stopping.wait(delay)
            # Whatever happened while not listening is looked at again by every waiter.
            self.wakeups.notify_all()

    def _serve(self) -> None:
        raise NotImplementedError


class _PostgresListener(_Source):
    name = "queue-listen"

    def _serve(self) -> None:
        import psycopg

        url = self.wakeups.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"LISTEN {READY_CHANNEL}")
            self.ready.set()
            while not self.stopping.is_set():
                for note in conn.notifies(timeout=0.25):
                    self._deliver(note.payload)
                    if self.stopping.is_set():
                        return

    def _deliver(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            tenant_id = str(data["t"])
        except (ValueError, KeyError, TypeError):
            self.wakeups.notify_all()
            return
        labels = data.get("l")
        self.wakeups.notify(tenant_id, [str(x) for x in labels] if isinstance(labels, list) else None)


class _SQLiteWatcher(_Source):
    name = "queue-watch"

    def _serve(self) -> None:
        states, runs = t.flow_run_states, t.flow_runs
        with self.wakeups.engine.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(states.c.id))).scalar() or 0
            conn.rollback()
            self.ready.set()
            while not self.stopping.wait(SQLITE_WATCH_INTERVAL):
                if not self.wakeups.waiting:
                    continue
                newest = conn.execute(sa.select(sa.func.max(states.c.id))).scalar() or 0
                if newest > last:
                    rows: list[Any] = conn.execute(
                        sa.select(runs.c.tenant_id, runs.c.labels)
                        .join(states, states.c.flow_run_id == runs.c.id)
                        .where(
                            (states.c.id > last) & (states.c.id <= newest) & (states.c.state == State.SCHEDULED.value)
                        )
                    ).all()
                    for tenant_id, labels in rows:
                        self.wakeups.notify(tenant_id, list(labels))
                    last = newest
                # Ends the read transaction, so the next look sees other processes' commits.
                conn.rollback()
