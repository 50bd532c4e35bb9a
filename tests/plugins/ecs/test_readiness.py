"""Readiness gating on ecs: an agent whose cluster check fails starts, claims nothing, and says why.

Its runs stay Scheduled, for a healthy agent with the same labels to run (docs/backends/ecs.md,
"Preflight"; the rule is the engine's, docs/engine.md "Readiness").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, free_loopback_port, wait_for_final, wait_until
from tests.plugins.ecs.helpers import create_run
from tests.plugins.ecs.runtime import TaskRuntime
from tests.plugins.probes import health


def test_an_agent_whose_cluster_is_missing_claims_nothing_and_a_healthy_agent_runs_its_runs(
    client: APIClient, start_agent: Callable[..., AgentThread], runtime: TaskRuntime
) -> None:
    label = f"pool-{uuid.uuid4().hex[:8]}"
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    address = f"http://127.0.0.1:{free_loopback_port()}"
    run = create_run(client, "sh -c 'echo ran'", labels=[label])

    broken = start_agent(backend={"cluster": missing}, labels=[label], agent_address=address)
    status, body = health(address, "/api/health/ready")
    assert status == 503, body
    assert body["problems"]["backend"].startswith(f"ECS cluster: cluster {missing!r}"), body
    assert body["problems"]["backend"].endswith("MISSING"), body
    polls = broken.agent.polls
    assert wait_until(lambda: broken.agent.polls >= polls + 3, 30)
    found = client.get_flow_run(run["id"])
    assert found["state"]["type"] == "Scheduled", found["state"]
    assert found["agent_id"] is None
    assert runtime.started == []

    healthy = start_agent(labels=[label])
    final = wait_for_final(client, run["id"], 60)
    assert final["state"]["type"] == "Success", final["state"]
    assert final["agent_id"] == healthy.agent.id
    assert broken.thread.is_alive()
