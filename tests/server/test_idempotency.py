"""Idempotency keys: the same key twice returns the first run, never a second one."""

import threading
from concurrent.futures import ThreadPoolExecutor

import requests


def post_run(server, body, key=""):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/api/flow-runs", json=body, headers=headers, timeout=10)


def test_the_same_key_twice_returns_the_first_run(api, make_flow):
    flow = make_flow()
    first = api.create_flow_run(flow_id=flow["id"], idempotency_key="nightly-2030-01-01")

    second = api.create_flow_run(flow_id=flow["id"], idempotency_key="nightly-2030-01-01")

    assert second["id"] == first["id"]
    assert len(api.list_flow_runs()) == 1


def test_the_first_create_answers_201_and_a_repeat_200(api_server, make_flow):
    body = {"flow_id": make_flow()["id"], "idempotency_key": "k1"}

    first = post_run(api_server, body)
    repeat = post_run(api_server, body)

    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.json()["id"] == first.json()["id"]


def test_a_repeat_with_other_values_still_returns_the_first_run_unchanged(api, make_flow):
    flow = make_flow()
    first = api.create_flow_run(flow_id=flow["id"], idempotency_key="k1", parameters={"n": 1})

    second = api.create_flow_run(flow_id=flow["id"], idempotency_key="k1", parameters={"n": 2}, labels=["x"])

    assert second["id"] == first["id"]
    assert second["parameters"] == {"n": 1}
    assert second["labels"] == []


def test_the_key_returns_the_run_in_its_current_state(api, make_flow):
    flow = make_flow()
    first = api.create_flow_run(flow_id=flow["id"], idempotency_key="k1")
    api.set_flow_run_state(first["id"], version=1, state="Running")

    again = api.create_flow_run(flow_id=flow["id"], idempotency_key="k1")

    assert (again["id"], again["state"]["type"]) == (first["id"], "Running")


def test_different_keys_make_different_runs(api, make_flow):
    flow = make_flow()

    a = api.create_flow_run(flow_id=flow["id"], idempotency_key="a")
    b = api.create_flow_run(flow_id=flow["id"], idempotency_key="b")

    assert a["id"] != b["id"]


def test_runs_without_a_key_are_all_created(api_server, make_flow):
    body = {"flow_id": make_flow()["id"]}

    statuses = [post_run(api_server, body).status_code for _ in range(3)]

    assert statuses == [201, 201, 201]


def test_the_key_is_shown_on_the_run(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], idempotency_key="nightly")

    assert api.get_flow_run(run["id"])["idempotency_key"] == "nightly"


def test_concurrent_creates_with_one_key_make_one_run(api_server, api, make_flow):
    body = {"flow_id": make_flow()["id"], "idempotency_key": "burst"}
    barrier = threading.Barrier(12)

    def create(_):
        barrier.wait(timeout=30)
        return post_run(api_server, body)

    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(create, range(12)))

    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(api.list_flow_runs()) == 1


def test_the_same_key_in_two_tenants_makes_a_run_in_each(auth_api_server):
    store = auth_api_server.store
    _, key_a = store.create_key(store.ensure_tenant("tenant-a"), "user")
    _, key_b = store.create_key(store.ensure_tenant("tenant-b"), "user")
    ids = []
    for key in (key_a, key_b):
        client = auth_api_server.client(key)
        flow = client.register_flow("etl", "run")
        ids.append(client.create_flow_run(flow_id=flow["id"], idempotency_key="shared")["id"])

    assert ids[0] != ids[1]
