"""Several agents on one PostgreSQL-backed API: every run is executed exactly once."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core.testing.servers import APIServer
from tests.e2e.conftest import wait_until

RUNS = 300


@pytest.fixture
def pg_server(postgres_url: str) -> Iterator[APIServer]:
    with APIServer(postgres_url) as running:
        yield running


@pytest.mark.slow
@pytest.mark.timeout(420)  # ~20 s on a quiet machine; far longer with both cores taken by other work
def test_two_agents_execute_each_of_300_runs_exactly_once(pg_server: APIServer, start_agent, tmp_path: Path):
    client = pg_server.client()
    ledger = tmp_path / "executed"
    # `>>` opens with O_APPEND: each workload appends one short line atomically.
    flow = client.register_flow("count", f"sh -c 'echo \"$AGENT_FLOW_RUN_ID\" >> {ledger}'")
    tenant = pg_server.store.ensure_tenant("default")
    run_ids = {pg_server.store.create_run(tenant, {"flow_id": flow["id"]})[0]["id"] for _ in range(RUNS)}

    agents = [start_agent(pg_server, name=name, ready=False) for name in ("racer-a", "racer-b")]

    def all_final() -> bool:
        return len(client.list_flow_runs(flow="count", states=["Success", "Failed", "Cancelled"])) == RUNS

    wait_until(all_final, 360, interval=1, message=lambda: f"{RUNS} final runs\n{agents[0].output()[-3000:]}")

    runs = client.list_flow_runs(flow="count")
    assert collections.Counter(r["state"]["type"] for r in runs) == {"Success": RUNS}
    executed = collections.Counter(ledger.read_text().split())
    assert set(executed) == run_ids
    assert [run for run, count in executed.items() if count > 1] == []
    claims = collections.Counter(r["agent_id"] for r in runs)
    assert len(claims) == 2, f"both agents should have claimed runs: {claims}"
    for agent in agents:
        assert agent.alive()
