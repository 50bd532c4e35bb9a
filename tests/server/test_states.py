"""The run state machine: every transition, version checks, and the state history.

Every pair of states is a case: a legal move is accepted with the next version, an illegal one
is a 422 that leaves the run alone. A stale version is a 409 "State update failed".
"""

import itertools
import uuid

import pendulum
import pytest
import requests

from agent_core.errors import BadRequest, IllegalTransition, NotFound, StateUpdateConflict
from agent_core.testing.servers import APIServer

STATES = ["Scheduled", "Submitted", "Running", "Success", "Failed", "Cancelling", "Cancelled"]

# The specification of the state machine: which moves are allowed from each state.
LEGAL = {
    "Scheduled": {"Submitted", "Running", "Failed", "Cancelled"},
    "Submitted": {"Scheduled", "Running", "Success", "Failed", "Cancelling", "Cancelled"},
    "Running": {"Success", "Failed", "Cancelling", "Cancelled"},
    "Cancelling": {"Cancelled", "Success", "Failed"},
    "Success": set(),
    "Failed": set(),
    "Cancelled": set(),
}

# How a new run reaches each state through legal moves.
PATH_TO = {
    "Scheduled": [],
    "Submitted": ["Submitted"],
    "Running": ["Running"],
    "Success": ["Running", "Success"],
    "Failed": ["Running", "Failed"],
    "Cancelling": ["Running", "Cancelling"],
    "Cancelled": ["Cancelled"],
}

PAIRS = list(itertools.product(STATES, STATES))
LEGAL_PAIRS = [(a, b) for a, b in PAIRS if b in LEGAL[a]]
ILLEGAL_PAIRS = [(a, b) for a, b in PAIRS if b not in LEGAL[a]]


@pytest.fixture(scope="module")
def shared_server(module_db_url):
    """One server per database for the whole table; every case makes its own run."""
    with APIServer(module_db_url) as server:
        yield server


@pytest.fixture(scope="module")
def client(shared_server):
    return shared_server.client()


@pytest.fixture(scope="module")
def flow(client):
    return client.register_flow("state-machine", "echo states")


def run_in(client, flow, state):
    """A new run brought to ``state`` through legal moves."""
    run = client.create_flow_run(flow_id=flow["id"])
    for step in PATH_TO[state]:
        run = client.set_flow_run_state(run["id"], version=run["version"], state=step, message=f"to {step}")
    assert run["state"]["type"] == state
    return run


def test_the_table_covers_every_state():
    assert set(LEGAL) == set(STATES) == set(PATH_TO)


@pytest.mark.parametrize(("current", "new"), LEGAL_PAIRS, ids=[f"{a}->{b}" for a, b in LEGAL_PAIRS])
def test_a_legal_transition_is_accepted_with_the_next_version(client, flow, current, new):
    run = run_in(client, flow, current)

    moved = client.set_flow_run_state(run["id"], version=run["version"], state=new, message="moved")

    assert moved["state"]["type"] == new
    assert moved["state"]["message"] == "moved"
    assert moved["version"] == run["version"] + 1


@pytest.mark.parametrize(("current", "new"), ILLEGAL_PAIRS, ids=[f"{a}->{b}" for a, b in ILLEGAL_PAIRS])
def test_an_illegal_transition_is_refused_with_422_and_changes_nothing(client, flow, current, new):
    run = run_in(client, flow, current)

    with pytest.raises(IllegalTransition) as caught:
        client.set_flow_run_state(run["id"], version=run["version"], state=new)

    assert caught.value.status == 422
    assert current in str(caught.value)
    assert new in str(caught.value)
    after = client.get_flow_run(run["id"])
    assert (after["state"]["type"], after["version"]) == (current, run["version"])


def test_a_stale_version_is_refused_with_409_state_update_failed(client, flow):
    run = run_in(client, flow, "Submitted")

    with pytest.raises(StateUpdateConflict) as caught:
        client.set_flow_run_state(run["id"], version=run["version"] - 1, state="Running")

    assert caught.value.status == 409
    assert caught.value.error == "State update failed"


def test_a_version_ahead_of_the_run_is_refused_with_409(client, flow):
    run = run_in(client, flow, "Scheduled")

    with pytest.raises(StateUpdateConflict):
        client.set_flow_run_state(run["id"], version=run["version"] + 5, state="Submitted")


def test_a_refused_stale_update_changes_nothing(client, flow):
    run = run_in(client, flow, "Running")

    with pytest.raises(StateUpdateConflict):
        client.set_flow_run_state(run["id"], version=1, state="Success")

    after = client.get_flow_run(run["id"])
    assert (after["state"]["type"], after["version"]) == ("Running", run["version"])


def test_the_version_read_from_the_queue_is_the_one_to_send(client, flow):
    run = run_in(client, flow, "Scheduled")
    queued = {r["id"]: r for r in client.get_queue([], pendulum.now("UTC"), limit=500)}[run["id"]]

    claimed = client.set_flow_run_state(run["id"], version=queued["version"], state="Submitted")

    assert claimed["version"] == queued["version"] + 1


def test_an_unknown_state_name_is_a_bad_request_naming_the_field(client, flow):
    run = run_in(client, flow, "Scheduled")

    with pytest.raises(BadRequest) as caught:
        client.set_flow_run_state(run["id"], version=1, state="Exploded")

    assert caught.value.status == 400
    assert "type" in caught.value.detail["state"]


def test_changing_the_state_of_an_unknown_run_is_not_found(client):
    with pytest.raises(NotFound):
        client.set_flow_run_state(str(uuid.uuid4()), version=1, state="Submitted")


def test_a_new_run_has_one_history_entry_scheduled(client, flow):
    run = run_in(client, flow, "Scheduled")

    history = client.flow_run_states(run["id"])

    assert [(h["type"], h["version"]) for h in history] == [("Scheduled", 1)]


def test_every_state_change_is_kept_in_order_with_its_message_and_version(client, flow):
    run = run_in(client, flow, "Scheduled")
    for version, state in enumerate(["Submitted", "Running", "Success"], start=1):
        client.set_flow_run_state(run["id"], version=version, state=state, message=f"now {state}")

    history = client.flow_run_states(run["id"])

    assert [(h["type"], h["message"], h["version"]) for h in history[1:]] == [
        ("Submitted", "now Submitted", 2),
        ("Running", "now Running", 3),
        ("Success", "now Success", 4),
    ]


def test_every_history_entry_has_the_time_of_its_change(client, flow):
    before = pendulum.now("UTC")
    run = run_in(client, flow, "Success")
    after = pendulum.now("UTC")

    times = [pendulum.parse(h["timestamp"]) for h in client.flow_run_states(run["id"])]

    assert len(times) == 3
    assert all(before <= t <= after for t in times)
    assert times == sorted(times)


def test_refused_changes_are_not_kept_in_the_history(client, flow):
    run = run_in(client, flow, "Success")
    with pytest.raises(IllegalTransition):
        client.set_flow_run_state(run["id"], version=run["version"], state="Running")
    with pytest.raises(StateUpdateConflict):
        client.set_flow_run_state(run["id"], version=1, state="Running")

    assert [h["type"] for h in client.flow_run_states(run["id"])] == ["Scheduled", "Running", "Success"]


def test_the_history_records_the_claiming_agent(shared_server, client, flow):
    agent = client.register_agent(name="claimer", backend="local", labels=[])
    runner = shared_server.client()
    runner.set_agent_id(agent["id"])
    run = run_in(client, flow, "Scheduled")

    runner.set_flow_run_state(run["id"], version=1, state="Submitted")

    assert client.flow_run_states(run["id"])[-1]["agent_id"] == agent["id"]


def test_the_history_of_an_unknown_run_is_not_found(shared_server):
    response = requests.get(f"{shared_server.url}/api/flow-runs/{uuid.uuid4()}/states", timeout=10)

    assert response.status_code == 404
    assert response.json()["error"] == "Flow run not found"
