"""The API server's Prometheus metrics (``GET /metrics``), in a registry of its own per server.

Request counts and latencies are recorded as requests are answered (``observe.py``); the
gauges of what the database holds (runs by state, queue depth, agents alive) are read from
the store at each scrape, so that every server on one database reports the same figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.server.service import APIService

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Long polls last up to 30 s; the rest is milliseconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    def __init__(self, service: APIService) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "agent_api_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "agent_api_request_duration_seconds",
            "Time to answer an HTTP request (long polls included), by method and route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StoreCollector(service))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StoreCollector(Collector):
    def __init__(self, service: APIService) -> None:
        self.service = service

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing to query when the registry is built

    def collect(self) -> Iterator[Metric]:
        service = self.service
        waiting = GaugeMetricFamily("agent_api_long_polls_waiting", "Long polls (POST /api/queue) waiting now")
        waiting.add_metric([], service.wakeups.waiting)
        yield waiting
        refused = CounterMetricFamily(
            "agent_api_long_polls_refused", "Long polls answered at once because every long-poll slot was taken"
        )
        refused.add_metric([], service.wakeups.refused)
        yield refused
        recovered = CounterMetricFamily(
            "agent_api_runs_recovered",
            "Runs this server recovered from agents whose lease expired, by new state",
            labels=["state"],
        )
        for state, count in sorted(service.sweeper.recovered.items()):
            recovered.add_metric([state], count)
        yield recovered
        up = GaugeMetricFamily("agent_api_storage_up", "1 when the database answered this scrape, else 0")
        try:
            by_state = service.store.count_runs_by_state()
            due = service.store.count_due()
            alive = service.store.count_agents_alive()
        except Exception:  # a scrape during an outage still says so
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        runs = GaugeMetricFamily("agent_api_flow_runs", "Flow runs in the database, by state", labels=["state"])
        for state in State:
            runs.add_metric([state.value], by_state.get(state.value, 0))
        yield runs
        depth = GaugeMetricFamily("agent_api_queue_depth", "Scheduled runs whose start time has come")
        depth.add_metric([], due)
        yield depth
        agents = GaugeMetricFamily("agent_api_agents_alive", "Agents whose lease is current and that did not leave")
        agents.add_metric([], alive)
        yield agents
