"""A real API server on a loopback ephemeral port, for tests and benchmarks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_core.client import APIClient
from agent_core.server.serve import RunningServer, open_store, start_in_thread
from agent_core.server.service import APIService
from agent_core.server.settings import ServerSettings
from agent_core.server.storage import Store


@dataclass
class APIServer:
    """A waitress server over a store; ``stop()`` then ``start()`` brings it back on the same port.

    ``settings`` are the ``[server]`` settings (lease, long-poll slots...); ``service`` is the
    running server's parts (wake-ups, lease sweep, metrics) while it runs.
    """

    db_url: str
    auth: bool = False
    host: str = "127.0.0.1"
    port: int = 0
    settings: ServerSettings | None = None
    threads: int = 8
    store: Store = field(init=False)
    service: APIService | None = field(default=None, init=False)
    _running: RunningServer | None = field(default=None, init=False)
    _clients: list[APIClient] = field(default_factory=list, init=False)

    def start(self) -> APIServer:
        if not hasattr(self, "store"):
            self.store = open_store(self.db_url)
        self.service = APIService(self.store, self.settings)
        self._running = start_in_thread(
            self.store, self.host, self.port, auth=self.auth, threads=self.threads, service=self.service
        )
        self.port = int(self._running.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        if self._running is not None:
            self._running.stop()
            self._running = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def requests_answered(self, method: str, route: str) -> int:
        """How many ``method route`` requests (a route template, e.g. ``/api/logs``) the server
        answered, whatever their status: read from its ``GET /metrics``, as a scraper would."""
        import requests
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(f"{self.url}/metrics", timeout=10).text
        return int(
            sum(
                sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
                if sample.name == "agent_api_requests_total"
                and sample.labels.get("method") == method
                and sample.labels.get("route") == route
            )
        )

    def client(self, key: str = "", **kwargs: Any) -> APIClient:
        kwargs.setdefault("retries", 0)
        client = APIClient(self.url, key, **kwargs)
        self._clients.append(client)
        return client

    def close(self) -> None:
        self.stop()
        for client in self._clients:
            client.close()
        self.store.engine.dispose()

    def __enter__(self) -> APIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
