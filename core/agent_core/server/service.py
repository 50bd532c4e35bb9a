"""``APIService``: one API server's parts around its store (long-poll wake-ups, the lease sweep, metrics).

The app (``create_app``) reads them; whoever serves it (``serve.py``, tests) starts the
service with the server and stops it after.
"""

from __future__ import annotations

from agent_core.server.leases import LeaseSweeper
from agent_core.server.metrics import ServerMetrics
from agent_core.server.settings import ServerSettings
from agent_core.server.storage import Store
from agent_core.server.wakeups import Wakeups


class APIService:
    def __init__(self, store: Store, settings: ServerSettings | None = None) -> None:
        self.store = store
        self.settings = settings or ServerSettings()
        self.wakeups = Wakeups(store.engine, self.settings.long_poll_slots)
        store.add_ready_listener(self.wakeups.notify)
        self.sweeper = LeaseSweeper(
            store,
            lease_seconds=self.settings.agent_lease_seconds,
            cancelling_timeout_seconds=self.settings.cancelling_timeout_seconds,
        )
        self.metrics = ServerMetrics(self)

    def start(self) -> APIService:
        """Start the lease sweep (the wake-up sources start with the first long poll)."""
        self.sweeper.start()
        return self

    def stop(self) -> None:
        self.sweeper.stop()
        self.wakeups.close()
        self.store.remove_ready_listener(self.wakeups.notify)
