"""Reading an agent's health port the way Kubernetes and Prometheus do: probes and ``/metrics``."""

from __future__ import annotations

from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from agent_core.testing.harness import free_loopback_port


def health_address() -> str:
    """A free ``--agent-address`` on loopback."""
    return f"http://127.0.0.1:{free_loopback_port()}"


def get(url: str) -> requests.Response | None:
    """The answer, or ``None`` while nothing listens there yet."""
    try:
        return requests.get(url, timeout=10)
    except requests.ConnectionError:
        return None


def probe(address: str, which: str) -> tuple[int, dict[str, Any]]:
    """``(status code, body)`` of ``/api/health/<which>``."""
    response = requests.get(f"{address}/api/health/{which}", timeout=10)
    return response.status_code, response.json()


class Scrape:
    """One scrape of ``/metrics``: ``scrape["agent_polls_total"]``, ``scrape.value(name, state=...)``."""

    def __init__(self, address: str) -> None:
        response = requests.get(f"{address}/metrics", timeout=10)
        response.raise_for_status()
        self.content_type = response.headers["Content-Type"]
        self.text = response.text
        self.samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                self.samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(self, metric: str, /, **labels: str) -> float | None:
        return self.samples.get((metric, tuple(sorted(labels.items()))))

    def __getitem__(self, name: str) -> float:
        value = self.value(name)
        if value is None:
            raise KeyError(f"{name} not in the scrape:\n{self.text}")
        return value
