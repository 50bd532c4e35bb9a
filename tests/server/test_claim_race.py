"""The claim race: 16 clients claim the same run over HTTP at once; exactly one wins.

Each racer is its own APIClient (its own session and connections) and its own registered
agent, released together by a barrier, on SQLite and on PostgreSQL.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent_core.errors import StateUpdateConflict

RACERS = 16
RUNS = 20


@pytest.fixture
def racers(api_server, api):
    clients = []
    for i in range(RACERS):
        agent = api.register_agent(name=f"racer-{i}", backend="local", labels=[])
        client = api_server.client()
        client.set_agent_id(agent["id"])
        clients.append((agent["id"], client))
    return clients


def race(racers, run_id):
    """Every racer claims ``run_id`` with version 1; returns (winner agent ids, conflicts)."""
    barrier = threading.Barrier(len(racers))

    def claim(agent_id, client):
        barrier.wait(timeout=30)
        try:
            client.set_flow_run_state(run_id, version=1, state="Submitted", message=f"claimed by {agent_id}")
        except StateUpdateConflict:
            return None
        return agent_id

    with ThreadPoolExecutor(len(racers)) as pool:
        results = list(pool.map(lambda racer: claim(*racer), racers))
    winners = [r for r in results if r is not None]
    return winners, len(results) - len(winners)


def test_exactly_one_of_16_racing_clients_claims_each_run(api, make_flow, racers):
    flow = make_flow()
    runs = [api.create_flow_run(flow_id=flow["id"]) for _ in range(RUNS)]

    outcomes = [race(racers, run["id"]) for run in runs]

    assert [len(winners) for winners, _ in outcomes] == [1] * RUNS
    assert [conflicts for _, conflicts in outcomes] == [RACERS - 1] * RUNS


def test_the_run_belongs_to_the_winner_at_version_2(api, make_flow, racers):
    run = api.create_flow_run(flow_id=make_flow()["id"])

    (winner,), _ = race(racers, run["id"])

    claimed = api.get_flow_run(run["id"])
    assert claimed["state"]["type"] == "Submitted"
    assert claimed["version"] == 2
    assert claimed["agent_id"] == winner


def test_the_history_holds_a_single_claim(api, make_flow, racers):
    run = api.create_flow_run(flow_id=make_flow()["id"])

    (winner,), _ = race(racers, run["id"])

    history = api.flow_run_states(run["id"])
    assert [h["type"] for h in history] == ["Scheduled", "Submitted"]
    assert history[-1]["message"] == f"claimed by {winner}"
