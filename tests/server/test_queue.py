"""The queue: Scheduled runs due before a time whose labels are a subset of the agent's."""

import pendulum
import pytest
import requests

from agent_core.testing.servers import APIServer

# agent labels, run labels, ready?
LABEL_CASES = [
    ([], [], True),
    ([], ["gpu"], False),
    (["gpu"], [], True),
    (["gpu"], ["gpu"], True),
    (["gpu", "eu"], ["gpu"], True),
    (["gpu", "eu"], ["eu", "gpu"], True),
    (["a", "b", "c"], ["b", "c"], True),
    (["gpu"], ["gpu", "eu"], False),
    (["cpu"], ["gpu"], False),
    (["gpu", "eu"], ["gpu", "us"], False),
    (["GPU"], ["gpu"], False),
]


def ids_in_queue(api, labels, before=None, limit=100):
    return [r["id"] for r in api.get_queue(labels, before or pendulum.now("UTC"), limit)]


@pytest.fixture(scope="module")
def table_api(module_db_url):
    """One server per database for the label table: each case looks only for its own run."""
    with APIServer(module_db_url) as server:
        client = server.client()
        client.register_flow("labels", "echo labels")
        yield client


@pytest.mark.parametrize(
    ("agent_labels", "run_labels", "ready"),
    LABEL_CASES,
    ids=[f"agent{a}-run{r}-{'ready' if ok else 'not'}" for a, r, ok in LABEL_CASES],
)
def test_a_run_is_ready_when_its_labels_are_a_subset_of_the_agents(table_api, agent_labels, run_labels, ready):
    run = table_api.create_flow_run(flow_name="labels", labels=run_labels)

    assert (run["id"] in ids_in_queue(table_api, agent_labels, limit=500)) is ready


def test_an_agent_without_labels_takes_only_runs_without_labels(api, make_flow):
    flow = make_flow()
    unlabeled = api.create_flow_run(flow_id=flow["id"], labels=[])
    api.create_flow_run(flow_id=flow["id"], labels=["gpu"])

    assert ids_in_queue(api, []) == [unlabeled["id"]]


def test_a_run_scheduled_later_than_before_is_not_ready(api, make_flow):
    now = pendulum.now("UTC")
    api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time=now.add(hours=1).isoformat())

    assert ids_in_queue(api, [], before=now) == []


def test_a_run_scheduled_earlier_than_before_is_ready(api, make_flow):
    now = pendulum.now("UTC")
    run = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time=now.add(minutes=5).isoformat())

    assert ids_in_queue(api, [], before=now.add(minutes=10)) == [run["id"]]


def test_before_defaults_to_now(api_server, api, make_flow):
    flow = make_flow()
    due = api.create_flow_run(flow_id=flow["id"])
    api.create_flow_run(flow_id=flow["id"], scheduled_start_time=pendulum.now("UTC").add(hours=1).isoformat())

    response = requests.post(f"{api_server.url}/api/queue", json={"labels": []}, timeout=10)

    assert [r["id"] for r in response.json()["items"]] == [due["id"]]


def test_ready_runs_are_ordered_by_start_time(api, make_flow):
    flow = make_flow()
    base = pendulum.now("UTC").subtract(hours=1)
    offsets = [30, 10, 50, 0, 20, 40]
    by_offset = {
        m: api.create_flow_run(flow_id=flow["id"], scheduled_start_time=base.add(minutes=m).isoformat())["id"]
        for m in offsets
    }

    assert ids_in_queue(api, []) == [by_offset[m] for m in sorted(offsets)]


def test_the_limit_keeps_the_earliest_runs(api, make_flow):
    flow = make_flow()
    base = pendulum.now("UTC").subtract(hours=1)
    ids = [
        api.create_flow_run(flow_id=flow["id"], scheduled_start_time=base.add(minutes=m).isoformat())["id"]
        for m in range(5)
    ]

    assert ids_in_queue(api, [], limit=2) == ids[:2]


# A state other than Scheduled, and how to get there from Scheduled.
NOT_SCHEDULED = {
    "Submitted": ["Submitted"],
    "Running": ["Running"],
    "Success": ["Running", "Success"],
    "Failed": ["Running", "Failed"],
    "Cancelling": ["Running", "Cancelling"],
    "Cancelled": ["Cancelled"],
}


@pytest.mark.parametrize("state", list(NOT_SCHEDULED))
def test_a_run_that_is_not_scheduled_is_not_ready(api, make_flow, state):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    for version, step in enumerate(NOT_SCHEDULED[state], start=1):
        api.set_flow_run_state(run["id"], version=version, state=step)

    assert ids_in_queue(api, []) == []


def test_a_run_handed_back_to_scheduled_is_ready_again(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state="Submitted")
    api.set_flow_run_state(run["id"], version=2, state="Scheduled", message="agent shutting down")

    queued = api.get_queue([], pendulum.now("UTC"))

    assert [(r["id"], r["version"]) for r in queued] == [(run["id"], 3)]


def test_a_queued_run_carries_everything_a_deployment_needs(api, make_flow):
    config = {"type": "docker", "image": "python:3.11"}
    flow = make_flow(name="etl", command="python etl.py", labels=["gpu"], run_config=config)
    run = api.create_flow_run(flow_id=flow["id"], parameters={"day": "monday"}, max_retries=2)

    (queued,) = api.get_queue(["gpu"], pendulum.now("UTC"))

    assert queued["id"] == run["id"]
    assert queued["version"] == 1
    assert queued["flow"] == {"id": flow["id"], "name": "etl", "version": 1, "command": "python etl.py"}
    assert queued["parameters"] == {"day": "monday"}
    assert queued["labels"] == ["gpu"]
    assert queued["run_config"] == config
    assert queued["attempt"] == 1
    assert queued["max_retries"] == 2
    assert queued["scheduled_start_time"] == run["scheduled_start_time"]
