"""Flow runs: creation and its defaults, reading, listing with filters and paging, cancel."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pendulum
import pytest
import requests

from agent_core.errors import BadRequest, IllegalTransition, NotFound, StateUpdateConflict


def test_a_run_is_created_by_flow_id(api, make_flow):
    flow = make_flow()

    run = api.create_flow_run(flow_id=flow["id"])

    assert run["flow"]["id"] == flow["id"]


def test_a_run_is_created_by_flow_name(api, make_flow):
    flow = make_flow(name="nightly")

    run = api.create_flow_run(flow_name="nightly")

    assert run["flow"]["id"] == flow["id"]
    assert run["flow"]["name"] == "nightly"


def test_creating_a_run_answers_201(api_server, make_flow):
    flow = make_flow()

    response = requests.post(f"{api_server.url}/api/flow-runs", json={"flow_id": flow["id"]}, timeout=10)

    assert response.status_code == 201


def test_a_new_run_is_scheduled_at_version_1_attempt_1(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])

    assert run["state"]["type"] == "Scheduled"
    assert run["version"] == 1
    assert run["attempt"] == 1
    assert run["agent_id"] is None


def test_a_run_starts_now_by_default(api, make_flow):
    before = pendulum.now("UTC")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    after = pendulum.now("UTC")

    assert before <= pendulum.parse(run["scheduled_start_time"]) <= after


def test_a_scheduled_start_time_with_an_offset_is_kept_as_the_same_instant(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time="2030-01-01T12:00:00+02:00")

    assert pendulum.parse(run["scheduled_start_time"]) == pendulum.datetime(2030, 1, 1, 10, tz="UTC")


def test_a_scheduled_start_time_without_an_offset_is_utc(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time="2030-01-01T12:00:00")

    assert pendulum.parse(run["scheduled_start_time"]) == pendulum.datetime(2030, 1, 1, 12, tz="UTC")


def test_a_run_takes_the_flows_labels_by_default(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow(labels=["gpu", "eu"])["id"])

    assert run["labels"] == ["eu", "gpu"]


def test_labels_given_at_creation_replace_the_flows(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow(labels=["gpu"])["id"], labels=["cpu"])

    assert run["labels"] == ["cpu"]


def test_an_empty_label_list_at_creation_means_no_labels(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow(labels=["gpu"])["id"], labels=[])

    assert run["labels"] == []


def test_a_run_takes_the_flows_run_config_by_default(api, make_flow):
    config = {"type": "docker", "image": "python:3.11"}

    run = api.create_flow_run(flow_id=make_flow(run_config=config)["id"])

    assert run["run_config"] == config


def test_a_run_config_given_at_creation_replaces_the_flows(api, make_flow):
    flow = make_flow(run_config={"type": "docker", "image": "python:3.11"})

    run = api.create_flow_run(flow_id=flow["id"], run_config={"type": "local", "working_dir": "/tmp"})

    assert run["run_config"] == {"type": "local", "working_dir": "/tmp"}


def test_parameters_are_kept_as_given(api, make_flow):
    parameters = {"n": 3, "names": ["a", "b"], "nested": {"x": None, "y": 1.5}, "flag": True}

    run = api.create_flow_run(flow_id=make_flow()["id"], parameters=parameters)

    assert api.get_flow_run(run["id"])["parameters"] == parameters


def test_retry_settings_are_kept(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=3, retry_delay_seconds=12.5)

    assert (run["max_retries"], run["retry_delay_seconds"]) == (3, 12.5)


def test_a_run_is_named_after_its_flow_by_default(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow(name="nightly")["id"])

    assert run["name"].startswith("nightly-")


def test_a_run_keeps_the_flow_version_it_was_created_with(api, make_flow):
    flow = make_flow(command="echo v1", name="etl")
    run = api.create_flow_run(flow_id=flow["id"])

    api.register_flow("etl", "echo v2")

    again = api.get_flow_run(run["id"])
    assert again["flow"]["version"] == 1
    assert again["flow"]["command"] == "echo v1"


def test_creating_a_run_of_an_unknown_flow_is_not_found(api):
    with pytest.raises(NotFound):
        api.create_flow_run(flow_name="no-such-flow")


def test_reading_an_unknown_run_is_not_found(api):
    with pytest.raises(NotFound):
        api.get_flow_run("00000000-0000-0000-0000-000000000000")


def test_runs_are_listed_newest_first(api, make_flow):
    flow = make_flow()
    ids = [api.create_flow_run(flow_id=flow["id"])["id"] for _ in range(3)]

    assert [r["id"] for r in api.list_flow_runs()] == ids[::-1]


def test_the_run_list_pages_with_a_cursor(api_server, api, make_flow):
    flow = make_flow()
    ids = [api.create_flow_run(flow_id=flow["id"])["id"] for _ in range(7)]

    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{api_server.url}/api/flow-runs", params=params, timeout=10).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == ids[::-1]


def test_the_run_list_filters_by_state(api, make_flow):
    flow = make_flow()
    running = api.create_flow_run(flow_id=flow["id"])
    api.set_flow_run_state(running["id"], version=1, state="Running")
    api.create_flow_run(flow_id=flow["id"])

    assert [r["id"] for r in api.list_flow_runs(states=["Running"])] == [running["id"]]


def test_the_run_list_filters_by_several_states(api, make_flow):
    flow = make_flow()
    running = api.create_flow_run(flow_id=flow["id"])
    api.set_flow_run_state(running["id"], version=1, state="Running")
    scheduled = api.create_flow_run(flow_id=flow["id"])
    cancelled = api.create_flow_run(flow_id=flow["id"])
    api.cancel_flow_run(cancelled["id"])

    listed = {r["id"] for r in api.list_flow_runs(states=["Running", "Scheduled"])}

    assert listed == {running["id"], scheduled["id"]}


@pytest.mark.parametrize("by", ["name", "id"])
def test_the_run_list_filters_by_flow(api, make_flow, by):
    wanted = make_flow(name="wanted")
    other = make_flow(name="other")
    run = api.create_flow_run(flow_id=wanted["id"])
    api.create_flow_run(flow_id=other["id"])

    assert [r["id"] for r in api.list_flow_runs(flow=wanted[by])] == [run["id"]]


def test_the_run_list_filters_by_label(api, make_flow):
    flow = make_flow()
    gpu = api.create_flow_run(flow_id=flow["id"], labels=["gpu", "eu"])
    api.create_flow_run(flow_id=flow["id"], labels=["eu"])

    assert [r["id"] for r in api.list_flow_runs(label="gpu")] == [gpu["id"]]


def test_the_run_list_filters_by_claiming_agent(api_server, api, make_flow):
    flow = make_flow()
    agent = api.register_agent(name="a1", backend="local", labels=[])
    claimer = api_server.client()
    claimer.set_agent_id(agent["id"])
    claimed = api.create_flow_run(flow_id=flow["id"])
    claimer.set_flow_run_state(claimed["id"], version=1, state="Submitted")
    api.create_flow_run(flow_id=flow["id"])

    assert [r["id"] for r in api.list_flow_runs(agent_id=agent["id"])] == [claimed["id"]]


def test_the_claiming_agent_is_recorded_on_the_run(api_server, api, make_flow):
    agent = api.register_agent(name="a1", backend="local", labels=[])
    claimer = api_server.client()
    claimer.set_agent_id(agent["id"])
    run = api.create_flow_run(flow_id=make_flow()["id"])

    claimed = claimer.set_flow_run_state(run["id"], version=1, state="Submitted")

    assert claimed["agent_id"] == agent["id"]


def test_a_deployment_is_recorded_without_changing_the_version(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state="Submitted")
    deployment = {"backend": "local", "platform_id": "pid-42", "info": "PID 42", "data": {"pid": 42}}

    updated = api.set_deployment(run["id"], deployment)

    assert updated["deployment"] == deployment
    assert updated["version"] == 2


def agent_client(api_server, api, name):
    agent = api.register_agent(name=name, backend="local", labels=[])
    client = api_server.client()
    client.set_agent_id(agent["id"])
    return client


DEPLOYMENT = {"backend": "local", "platform_id": "pid-42"}


def test_the_agent_holding_a_run_records_its_deployment(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    holder.set_flow_run_state(run["id"], version=1, state="Submitted")

    assert holder.set_deployment(run["id"], DEPLOYMENT)["deployment"]["platform_id"] == "pid-42"


def test_a_deployment_from_an_agent_no_longer_holding_the_run_is_refused(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    claimed = holder.set_flow_run_state(run["id"], version=1, state="Submitted")
    holder.set_flow_run_state(run["id"], version=claimed["version"], state="Scheduled", message="handed back")

    with pytest.raises(StateUpdateConflict, match="no longer held by agent"):
        holder.set_deployment(run["id"], DEPLOYMENT)

    assert api.get_flow_run(run["id"])["deployment"] is None


def test_a_deployment_for_a_run_another_agent_holds_is_refused(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    other = agent_client(api_server, api, "other")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    holder.set_flow_run_state(run["id"], version=1, state="Submitted")

    with pytest.raises(StateUpdateConflict, match="held by agent"):
        other.set_deployment(run["id"], DEPLOYMENT)


def test_a_change_to_running_records_the_deployment_it_carries(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    claimed = holder.set_flow_run_state(run["id"], version=1, state="Submitted")

    running = holder.set_flow_run_state(
        run["id"], version=claimed["version"], state="Running", message="Running", deployment=DEPLOYMENT
    )

    assert running["state"]["type"] == "Running"
    assert running["version"] == claimed["version"] + 1
    assert running["deployment"] == {**DEPLOYMENT, "info": "", "data": {}}
    assert api.get_flow_run(run["id"])["deployment"] == running["deployment"]


def test_a_change_to_running_with_a_deployment_from_an_agent_not_holding_the_run_writes_neither(
    api_server, api, make_flow
):
    holder = agent_client(api_server, api, "holder")
    other = agent_client(api_server, api, "other")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    claimed = holder.set_flow_run_state(run["id"], version=1, state="Submitted")

    with pytest.raises(StateUpdateConflict, match="no longer held by agent"):
        other.set_flow_run_state(run["id"], version=claimed["version"], state="Running", deployment=DEPLOYMENT)

    after = api.get_flow_run(run["id"])
    assert (after["state"]["type"], after["version"], after["deployment"]) == ("Submitted", claimed["version"], None)


def test_a_stale_change_to_running_does_not_record_its_deployment(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    claimed = holder.set_flow_run_state(run["id"], version=1, state="Submitted")
    api.cancel_flow_run(run["id"])

    with pytest.raises(StateUpdateConflict, match="not 2"):
        holder.set_flow_run_state(run["id"], version=claimed["version"], state="Running", deployment=DEPLOYMENT)

    assert api.get_flow_run(run["id"])["deployment"] is None


def test_a_deployment_with_a_state_other_than_running_is_rejected(api_server, api, make_flow):
    holder = agent_client(api_server, api, "holder")
    run = api.create_flow_run(flow_id=make_flow()["id"])
    claimed = holder.set_flow_run_state(run["id"], version=1, state="Submitted")

    with pytest.raises(BadRequest, match="Running only"):
        holder.set_flow_run_state(run["id"], version=claimed["version"], state="Success", deployment=DEPLOYMENT)


def test_running_sets_the_start_time_and_a_final_state_the_end_time(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    running = api.set_flow_run_state(run["id"], version=1, state="Running")
    done = api.set_flow_run_state(run["id"], version=running["version"], state="Success")

    assert running["start_time"] is not None
    assert running["end_time"] is None
    assert done["start_time"] == running["start_time"]
    assert pendulum.parse(done["end_time"]) >= pendulum.parse(done["start_time"])


def test_cancelling_a_scheduled_run_cancels_it_at_once(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])

    cancelled = api.cancel_flow_run(run["id"], "not needed")

    assert cancelled["state"]["type"] == "Cancelled"
    assert cancelled["state"]["message"] == "not needed"


@pytest.mark.parametrize("state", ["Submitted", "Running"])
def test_cancelling_a_deployed_run_asks_its_agent(api, make_flow, state):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state=state)

    assert api.cancel_flow_run(run["id"])["state"]["type"] == "Cancelling"


def test_cancelling_a_run_twice_leaves_it_cancelling(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state="Running")
    first = api.cancel_flow_run(run["id"])

    second = api.cancel_flow_run(run["id"])

    assert second["state"]["type"] == "Cancelling"
    assert second["version"] == first["version"]


@pytest.mark.parametrize("final", ["Success", "Failed", "Cancelled"])
def test_cancelling_a_finished_run_is_an_illegal_transition(api, make_flow, final):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state="Running")
    api.set_flow_run_state(run["id"], version=2, state=final)

    with pytest.raises(IllegalTransition) as caught:
        api.cancel_flow_run(run["id"])

    assert caught.value.status == 422


def test_cancelling_an_unknown_run_is_not_found(api):
    with pytest.raises(NotFound):
        api.cancel_flow_run("00000000-0000-0000-0000-000000000000")


def test_a_heartbeat_answers_with_the_agents_cancelling_runs(api_server, api, make_flow):
    flow = make_flow()
    agent = api.register_agent(name="a1", backend="local", labels=[])
    runner = api_server.client()
    runner.set_agent_id(agent["id"])
    to_cancel = api.create_flow_run(flow_id=flow["id"])
    to_keep = api.create_flow_run(flow_id=flow["id"])
    for run in (to_cancel, to_keep):
        runner.set_flow_run_state(run["id"], version=1, state="Submitted")
    api.cancel_flow_run(to_cancel["id"])

    answer = runner.agent_heartbeat(agent["id"])

    assert [r["id"] for r in answer["cancelling"]] == [to_cancel["id"]]


def test_a_heartbeat_updates_the_agents_last_seen_time(api):
    agent = api.register_agent(name="a1", backend="local", labels=["x"])

    api.agent_heartbeat(agent["id"])

    listed = {a["id"]: a for a in api.list_agents()}[agent["id"]]
    assert pendulum.parse(listed["last_heartbeat"]) >= pendulum.parse(agent["last_heartbeat"])
    assert listed["labels"] == ["x"]


def test_an_agent_config_is_read_back_by_id(api):
    config = api.create_agent_config("gpu-pool", {"labels": ["gpu"], "max_workers": 4})

    assert api.get_agent_config(config["id"])["settings"] == {"labels": ["gpu"], "max_workers": 4}


def test_registering_an_agent_name_again_keeps_its_id(api):
    first = api.register_agent(name="worker-1", backend="local", labels=["a"])

    again = api.register_agent(name="worker-1", backend="local", labels=["b"])

    assert again["id"] == first["id"]
    assert again["labels"] == ["b"]
    assert [a["id"] for a in api.list_agents()] == [first["id"]]


def test_concurrent_registrations_of_one_name_make_one_agent(api_server, api):
    names = [f"same-name-{i}" for i in range(5)]  # several rounds, so that the race is really run

    def register_together(name):
        barrier = threading.Barrier(8)

        def register(_):
            client = api_server.client()
            barrier.wait(timeout=30)
            return client.register_agent(name=name, backend="local", labels=[])["id"]

        with ThreadPoolExecutor(8) as pool:
            return set(pool.map(register, range(8)))

    ids = [register_together(name) for name in names]

    assert [len(round_ids) for round_ids in ids] == [1] * len(names)
    assert sorted(a["name"] for a in api.list_agents()) == names
