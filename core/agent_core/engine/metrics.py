"""The agent's Prometheus metrics (``GET /metrics`` on the health port), in a registry of its own.

Run counts and latencies come from the agent's run events (``agent.events``): a claim
(Scheduled -> Submitted), the first event of a claimed run that carries its deployment (the
deploy is done; today that is Running or a final state as the monitor learns it, and an event
the engine emits when it records the deployment would make it exact with no change here), a
failed deploy, Running as the monitor learns it and the final states. The
gauges (polls, API and backend, in-flight and monitored runs, probes) are read from the agent
at each scrape, so they never drift from what ``/api/health/ready`` says. Names are listed in
``docs/operations.md``; they share the ``agent_`` prefix with the server's ``agent_api_*``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent_core import __version__
from agent_core.states import FINAL_STATES, State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent
    from agent_core.engine.events import RunEvent

CONTENT_TYPE = CONTENT_TYPE_LATEST
# A deploy is a process start (milliseconds) up to an image pull or a Fargate task (minutes).
DEPLOY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
# Due to Running: the poll interval and the deploy at best, a queue backlog at worst.
START_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Claimed runs whose deploy is not yet seen; a run lost between two events (the agent's lease
# expired, a backend never telling) must not grow this forever.
MAX_WATCHED = 10_000


class AgentMetrics:
    """The metrics of one agent: counters fed by its run events, gauges read from it at scrape.

    Built by the agent in its constructor (before anything emits); ``render()`` is the body of
    ``GET /metrics``.
    """

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.registry = CollectorRegistry(auto_describe=True)
        self.claimed = Counter(
            "agent_flow_runs_claimed", "Flow runs this agent claimed (Scheduled -> Submitted)", registry=self.registry
        )
        self.deployed = Counter(
            "agent_flow_runs_deployed",
            "Claimed flow runs whose deploy_flow returned a deployment",
            registry=self.registry,
        )
        self.deploy_failed = Counter(
            "agent_flow_runs_deploy_failed",
            "Claimed flow runs failed because their deploy failed (counted in agent_flow_runs_final_total too)",
            registry=self.registry,
        )
        self.handed_back = Counter(
            "agent_flow_runs_handed_back",
            "Claimed flow runs handed back to the queue (Submitted -> Scheduled)",
            registry=self.registry,
        )
        self.reattached = Counter(
            "agent_flow_runs_reattached",
            "Flow runs this agent re-attached to after a restart",
            registry=self.registry,
        )
        self.final = Counter(
            "agent_flow_runs_final",
            "Flow runs this agent saw reach a final state, by state",
            ["state"],
            registry=self.registry,
        )
        for state in sorted(FINAL_STATES):
            self.final.labels(state.value)  # present at 0, so that rate() and alerts see them
        self.deploy_duration = Histogram(
            "agent_deploy_duration_seconds",
            "From the claim of a flow run to the first run event carrying its deployment (Running or final, "
            "as the monitor sees it)",
            buckets=DEPLOY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_running = Histogram(
            "agent_flow_run_time_to_running_seconds",
            "From a flow run's scheduled start (its creation, for a run created to start now) "
            "to this agent seeing it Running",
            buckets=START_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_AgentCollector(agent))
        self._lock = threading.Lock()
        # (run id, attempt) -> when it was claimed, until its deployment or its end is seen.
        self._claimed_at: OrderedDict[tuple[str, int], float] = OrderedDict()
        agent.events.subscribe(self.on_event)

    def on_event(self, event: RunEvent) -> None:
        """Count one run event (called on the run-events thread, in order)."""
        old, new, run = event.old_state, event.new_state, event.flow_run
        key = (run.id, run.attempt)
        at = event.at.timestamp()
        if old == new:
            if event.message == "re-attached":
                self.reattached.inc()
            self._note_deployment(key, event, at)
            return
        if old == State.SCHEDULED and new == State.SUBMITTED:
            self.claimed.inc()
            with self._lock:
                self._claimed_at[key] = at
                while len(self._claimed_at) > MAX_WATCHED:
                    self._claimed_at.popitem(last=False)
            return
        if new == State.RUNNING:
            waited = at - run.scheduled_start_time.timestamp()
            self.time_to_running.observe(max(waited, 0.0))
        if old == State.SUBMITTED and new == State.SCHEDULED:
            self.handed_back.inc()
            self._forget(key)
            return
        if old == State.SUBMITTED and new == State.FAILED and event.deployment is None and self._forget(key):
            self.deploy_failed.inc()
        self._note_deployment(key, event, at)
        if new.is_final:
            self.final.labels(new.value).inc()
            self._forget(key)

    def _note_deployment(self, key: tuple[str, int], event: RunEvent, at: float) -> None:
        if event.deployment is None:
            return
        with self._lock:
            claimed_at = self._claimed_at.pop(key, None)
        if claimed_at is not None:
            self.deployed.inc()
            self.deploy_duration.observe(max(at - claimed_at, 0.0))

    def _forget(self, key: tuple[str, int]) -> bool:
        with self._lock:
            return self._claimed_at.pop(key, None) is not None

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _AgentCollector(Collector):
    """What the agent knows now, read at each scrape."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: nothing to read while the agent is being built

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        info = GaugeMetricFamily(
            "agent_info", "Always 1: the agent's name, backend and version", labels=["name", "backend", "version"]
        )
        info.add_metric([agent.name, agent.backend, __version__], 1)
        yield info
        polls = CounterMetricFamily("agent_polls", "Queue polls made (successful or not)")
        polls.add_metric([], agent.polls)
        yield polls
        errors = CounterMetricFamily(
            "agent_poll_errors", "Queue polls that failed (API unreachable, refused, malformed answer)"
        )
        errors.add_metric([], agent.poll_errors)
        yield errors
        yield _flag("agent_connected", "1 when the agent's last contact (connect, poll) reached the API", agent.api_up)
        yield _flag("agent_backend_ready", "1 when the backend's last preflight checks all passed", agent.backend_ready)
        yield _flag("agent_ready", "1 when GET /api/health/ready answers 200", agent.readiness()[0])
        yield _flag("agent_live", "1 when GET /api/health/live answers 200", agent.liveness()[0])
        in_flight = GaugeMetricFamily(
            "agent_flow_runs_in_flight",
            "Flow runs handed to a deploy thread and not finished with (waiting, claiming, deploying)",
        )
        in_flight.add_metric([], agent.in_flight_count)
        yield in_flight
        monitored = GaugeMetricFamily("agent_flow_runs_monitored", "Deployed flow runs the monitor is watching")
        monitored.add_metric([], agent.monitor.count)
        yield monitored


def _flag(name: str, documentation: str, value: bool) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(name, documentation)
    gauge.add_metric([], 1 if value else 0)
    return gauge
