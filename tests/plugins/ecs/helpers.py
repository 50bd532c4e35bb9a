"""Helpers of the ecs backend's tests: runs, logs, the plugin's state of an agent, AWS call counts."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from agent_core.client import APIClient
from agent_core.testing import harness
from agent_plugin_ecs.state import EcsState, state_of


def create_run(
    client: APIClient, command: str, run_config: dict[str, Any] | None = None, flow: str | None = None, **kwargs: Any
) -> dict[str, Any]:
    """One run of a flow (a new flow with ``command`` unless ``flow`` names one)."""
    found = client.register_flow(flow or f"ecs-{uuid.uuid4().hex[:8]}", command)
    return client.create_flow_run(flow_id=found["id"], run_config=run_config, **kwargs)


def log_messages(client: APIClient, run_id: str) -> list[str]:
    return harness.run_log_messages(client, run_id)


def plugin_state(agent: Any) -> EcsState:
    return state_of(agent)


class CallCounter:
    """Counts the AWS calls an agent's clients make, by (service, operation)."""

    def __init__(self, st: EcsState) -> None:
        self.calls: list[tuple[str, str]] = []
        st.clients.observers.append(self)

    def __call__(self, service: str, operation: str) -> None:
        self.calls.append((service, operation))

    def count(self, operation: str) -> int:
        return sum(1 for _, op in self.calls if op == operation)

    def counts(self) -> Counter[str]:
        return Counter(op for _, op in self.calls)

    def operations(self) -> list[str]:
        return [op for _, op in self.calls]
