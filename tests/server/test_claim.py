"""Claim in one round trip: ``POST /api/queue`` with ``claim: true`` claims the due runs for the
caller's agent atomically, writing what the version-checked claim writes; racing claimers
(and racing version-checked claims) still claim each run exactly once, on SQLite and PostgreSQL.
"""

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pendulum
import pytest
import requests

from agent_core.errors import StateUpdateConflict


def now():
    return pendulum.now("UTC")


@pytest.fixture
def agent(api_server, api):
    """A client of a registered agent named ``claimer``."""
    client = api_server.client()
    client.set_agent_id(api.register_agent(name="claimer", backend="local", labels=[])["id"])
    return client


def test_a_claim_answers_the_due_runs_submitted_to_the_caller(api, agent, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])

    (claimed,) = agent.get_queue([], now(), claim=True)

    agent_id = agent.session.headers["X-Agent-Id"]
    assert claimed["id"] == run["id"]
    assert (claimed["state"]["type"], claimed["version"], claimed["agent_id"]) == ("Submitted", 2, agent_id)
    assert claimed["state"]["message"] == "Submitted by agent claimer"
    stored = api.get_flow_run(run["id"])
    assert (stored["state"], stored["version"], stored["agent_id"]) == (
        claimed["state"],
        claimed["version"],
        claimed["agent_id"],
    )


def test_a_claim_writes_what_the_version_checked_claim_writes(api, agent, make_flow):
    flow = make_flow()
    by_queue = api.create_flow_run(flow_id=flow["id"])
    agent.get_queue([], now(), claim=True)
    by_state = api.create_flow_run(flow_id=flow["id"])
    agent.set_flow_run_state(by_state["id"], version=1, state="Submitted", message="Submitted by agent claimer")

    def written(run_id):
        run = api.get_flow_run(run_id)
        history = [{k: v for k, v in h.items() if k != "timestamp"} for h in api.flow_run_states(run_id)]
        kept = ("version", "attempt", "agent_id", "deployment", "start_time", "end_time", "scheduled_start_time")
        return {k: run[k] for k in kept if k != "scheduled_start_time"}, run["state"]["message"], history

    assert written(by_queue["id"]) == written(by_state["id"])


def test_runs_due_later_within_the_window_come_back_unclaimed(api, agent, make_flow):
    flow = make_flow()
    due = api.create_flow_run(flow_id=flow["id"])
    later = api.create_flow_run(flow_id=flow["id"], scheduled_start_time=now().add(minutes=5).isoformat())

    items = agent.get_queue([], now().add(minutes=10), claim=True)

    assert [(r["id"], r["state"]["type"], r["version"]) for r in items] == [
        (due["id"], "Submitted", 2),
        (later["id"], "Scheduled", 1),
    ]
    assert api.get_flow_run(later["id"])["state"]["type"] == "Scheduled"


def test_a_run_due_later_is_claimed_on_time_with_the_version_checked_claim(api, agent, make_flow):
    later = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time=now().add(minutes=5).isoformat())
    (item,) = agent.get_queue([], now().add(minutes=10), claim=True)

    claimed = agent.set_flow_run_state(item["id"], version=item["version"], state="Submitted")

    assert (claimed["id"], claimed["version"]) == (later["id"], 2)


def test_a_claim_takes_at_most_limit_runs_oldest_first(api, agent, make_flow):
    flow = make_flow()
    base = now().subtract(minutes=10)
    ids = [
        api.create_flow_run(flow_id=flow["id"], scheduled_start_time=base.add(minutes=m).isoformat())["id"]
        for m in range(5)
    ]

    claimed = agent.get_queue([], now(), limit=3, claim=True)

    assert [r["id"] for r in claimed] == ids[:3]
    assert [r["id"] for r in api.get_queue([], now())] == ids[3:]


def test_a_claim_takes_only_runs_whose_labels_the_agent_has(api_server, api, make_flow):
    flow = make_flow()
    gpu = api.create_flow_run(flow_id=flow["id"], labels=["gpu"])
    api.create_flow_run(flow_id=flow["id"], labels=["tpu"])
    client = api_server.client()
    client.set_agent_id(api.register_agent(name="gpu-agent", backend="local", labels=["gpu"])["id"])

    assert [r["id"] for r in client.get_queue(["gpu"], now(), claim=True)] == [gpu["id"]]


def test_a_claimed_run_is_no_longer_in_the_queue(api, agent, make_flow):
    api.create_flow_run(flow_id=make_flow()["id"])
    agent.get_queue([], now(), claim=True)

    assert agent.get_queue([], now(), claim=True) == []
    assert api.get_queue([], now()) == []


def test_a_claim_without_the_agent_header_is_a_422_naming_it(api_server):
    response = requests.post(f"{api_server.url}/api/queue", json={"claim": True}, timeout=10)

    assert response.status_code == 422, response.text
    assert "X-Agent-Id" in response.json()["detail"]


def test_a_claim_by_an_unknown_agent_is_a_404(api_server):
    headers = {"X-Agent-Id": "no-such-agent"}
    response = requests.post(f"{api_server.url}/api/queue", json={"claim": True}, headers=headers, timeout=10)

    assert response.status_code == 404, response.text


@pytest.mark.parametrize("claim", ["true", 1, None])
def test_claim_must_be_a_boolean(api_server, claim):
    response = requests.post(f"{api_server.url}/api/queue", json={"claim": claim}, timeout=10)

    assert response.status_code == 400, response.text
    assert "claim" in response.json()["detail"]


def test_a_waiting_claim_claims_the_run_created_meanwhile(api, agent, make_flow):
    flow = make_flow()
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(agent.get_queue, [], now(), wait_seconds=20, claim=True)
        threading.Event().wait(0.3)
        run = api.create_flow_run(flow_id=flow["id"])
        (claimed,) = future.result(timeout=30)

    assert (claimed["id"], claimed["state"]["type"]) == (run["id"], "Submitted")


# --- races --------------------------------------------------------------------------------

CLAIMERS = 8
RUNS = 120


@pytest.fixture
def claimers(api_server, api):
    clients = []
    for i in range(CLAIMERS):
        client = api_server.client()
        client.set_agent_id(api.register_agent(name=f"racer-{i}", backend="local", labels=[])["id"])
        clients.append(client)
    return clients


def claim_until_empty(clients, claim, limit=5):
    """Every client claims (``claim(client)`` → ids won) until nothing is left; ids won by each."""
    barrier = threading.Barrier(len(clients))

    def run(client):
        barrier.wait(timeout=30)
        won = []
        while True:
            ids = claim(client)
            if ids is None:
                return won
            won += ids

    with ThreadPoolExecutor(len(clients)) as pool:
        return list(pool.map(run, clients))


def by_queue(limit):
    def claim(client):
        items = client.get_queue([], now(), limit=limit, claim=True)
        return [r["id"] for r in items] if items else None

    return claim


def test_racing_claimers_claim_every_run_exactly_once(api, make_flow, claimers):
    flow = make_flow()
    runs = {api.create_flow_run(flow_id=flow["id"])["id"] for _ in range(RUNS)}

    won = claim_until_empty(claimers, by_queue(limit=5))

    everything = Counter(run_id for ids in won for run_id in ids)
    assert set(everything) == runs
    assert set(everything.values()) == {1}
    for run_id in list(runs)[:20]:
        assert [h["type"] for h in api.flow_run_states(run_id)] == ["Scheduled", "Submitted"]


def test_the_winner_of_each_run_is_the_agent_it_is_submitted_to(api, make_flow, claimers):
    flow = make_flow()
    for _ in range(40):
        api.create_flow_run(flow_id=flow["id"])

    won = claim_until_empty(claimers, by_queue(limit=3))

    for client, ids in zip(claimers, won, strict=True):
        for run_id in ids:
            assert api.get_flow_run(run_id)["agent_id"] == client.session.headers["X-Agent-Id"]


def test_claims_racing_version_checked_claims_still_claim_each_run_once(api, make_flow, claimers):
    flow = make_flow()
    runs = {api.create_flow_run(flow_id=flow["id"])["id"] for _ in range(60)}

    def by_state(client):
        items = client.get_queue([], now(), limit=5)
        if not items:
            return None
        won = []
        for run in items:
            try:
                client.set_flow_run_state(run["id"], version=run["version"], state="Submitted")
            except StateUpdateConflict:
                continue
            won.append(run["id"])
        return won

    half = CLAIMERS // 2
    queue_claim = by_queue(limit=5)
    won = claim_until_empty(claimers, lambda c: queue_claim(c) if claimers.index(c) < half else by_state(c))

    everything = Counter(run_id for ids in won for run_id in ids)
    assert set(everything) == runs
    assert set(everything.values()) == {1}
    for run_id in runs:
        history = [h["type"] for h in api.flow_run_states(run_id)]
        assert history == ["Scheduled", "Submitted"], history
