"""Flows: registering (a changed definition bumps the version), reading by id or name, listing."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from agent_core.errors import BadRequest, NotFound


def test_registering_a_new_flow_gives_version_1(api):
    flow = api.register_flow("etl", "python etl.py")

    assert flow["version"] == 1
    assert flow["changed"] is True
    assert flow["name"] == "etl"
    assert flow["command"] == "python etl.py"


def test_registering_the_same_definition_again_changes_nothing(api):
    first = api.register_flow("etl", "python etl.py", labels=["a"])
    again = api.register_flow("etl", "python etl.py", labels=["a"])

    assert again["changed"] is False
    assert again["version"] == 1
    assert again["id"] == first["id"]
    assert again["updated"] == first["updated"]


@pytest.mark.parametrize(
    "change",
    [
        {"command": "python etl.py --v2"},
        {"labels": ["gpu"]},
        {"run_config": {"type": "universal", "env": {"A": "1"}}},
        {"description": "now documented"},
    ],
    ids=["command", "labels", "run_config", "description"],
)
def test_a_changed_definition_bumps_the_version_and_keeps_the_id(api, change):
    first = api.register_flow("etl", "python etl.py")
    kwargs = {"labels": None, "run_config": None, "description": "", "command": "python etl.py", **change}

    second = api.register_flow("etl", kwargs.pop("command"), **kwargs)

    assert second["changed"] is True
    assert second["version"] == 2
    assert second["id"] == first["id"]


def test_labels_are_stored_sorted_without_duplicates(api):
    flow = api.register_flow("etl", "run", labels=["b", "a", "b"])

    assert flow["labels"] == ["a", "b"]


def test_a_flow_is_read_by_id(api):
    flow = api.register_flow("etl", "run")

    assert api.get_flow(flow["id"])["name"] == "etl"


def test_a_flow_is_read_by_name(api):
    flow = api.register_flow("etl", "run")

    assert api.get_flow("etl")["id"] == flow["id"]


def test_reading_an_unknown_flow_is_not_found(api):
    with pytest.raises(NotFound) as caught:
        api.get_flow("no-such-flow")

    assert caught.value.status == 404
    assert "no-such-flow" in str(caught.value)


def test_the_flow_list_is_ordered_by_name(api):
    for name in ("charlie", "alpha", "bravo"):
        api.register_flow(name, "run")

    assert [f["name"] for f in api.list_flows()] == ["alpha", "bravo", "charlie"]


def test_the_flow_list_pages_with_a_cursor(api_server, api):
    for i in range(5):
        api.register_flow(f"flow-{i}", "run")

    names, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{api_server.url}/api/flows", params=params, timeout=10).json()
        pages += 1
        names += [f["name"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert names == [f"flow-{i}" for i in range(5)]
    assert pages == 3


def test_a_universal_run_config_is_validated(api):
    with pytest.raises(BadRequest) as caught:
        api.register_flow("etl", "run", run_config={"type": "universal", "env": {"A": 1}})

    assert "run_config" in caught.value.detail


def test_a_run_config_needs_a_type(api):
    with pytest.raises(BadRequest) as caught:
        api.register_flow("etl", "run", run_config={"image": "python"})

    assert "run_config" in caught.value.detail


def test_a_core_run_config_key_is_checked_for_every_type(api):
    with pytest.raises(BadRequest) as caught:
        api.register_flow("etl", "run", run_config={"type": "docker", "timeout_seconds": -1})

    assert "timeout_seconds must be a positive number" in str(caught.value)


def test_a_universal_run_config_takes_the_core_keys_and_null_env_values(api):
    config = {"type": "universal", "env": {"DROP": None}, "timeout_seconds": 60, "ship_output": False}

    flow = api.register_flow("etl", "run", run_config=config)

    assert api.get_flow(flow["id"])["run_config"] == config


def test_a_backend_run_config_type_is_stored_as_given(api):
    config = {"type": "docker", "image": "python:3.11", "volumes": ["/a:/b"]}

    flow = api.register_flow("etl", "run", run_config=config)

    assert api.get_flow(flow["id"])["run_config"] == config


RACERS = 8
ROUNDS = 6


def test_racing_registrations_of_one_new_flow_all_succeed_and_every_change_bumps_the_version(api_server):
    clients = [api_server.client() for _ in range(RACERS)]
    for round_ in range(ROUNDS):
        name = f"race-{round_}"
        barrier = threading.Barrier(RACERS)

        def register(i, name=name, barrier=barrier):
            barrier.wait(timeout=30)
            return clients[i].register_flow(name, f"echo {i}")

        with ThreadPoolExecutor(RACERS) as pool:
            answers = list(pool.map(register, range(RACERS)))

        changed = sorted(a["version"] for a in answers if a["changed"])
        assert changed == list(range(1, RACERS + 1))  # each distinct definition: one version
        final = clients[0].get_flow(name)
        assert final["version"] == RACERS
        assert final["command"] == next(a["command"] for a in answers if a["version"] == RACERS)


def test_racing_registrations_of_one_definition_make_one_version(api_server):
    clients = [api_server.client() for _ in range(RACERS)]
    barrier = threading.Barrier(RACERS)

    def register(client):
        barrier.wait(timeout=30)
        return client.register_flow("same", "echo same")

    with ThreadPoolExecutor(RACERS) as pool:
        answers = list(pool.map(register, clients))

    assert [a["changed"] for a in answers].count(True) == 1
    assert {a["version"] for a in answers} == {1}
