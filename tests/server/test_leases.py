"""Leases: an agent's claim on its runs lasts while it heartbeats. Servers recover the runs of an
agent silent past its lease, safely when several share one PostgreSQL; a clean exit (leave)
hands back at once what was never deployed; runs stuck Cancelling with no live agent end.

Servers here run with a lease of about a second, so that a lease runs out within a test.
"""

import threading
import time
from collections import Counter

import pendulum
import pytest
import requests

from agent_core.server.settings import ServerSettings
from agent_core.testing.harness import wait_until
from agent_core.testing.servers import APIServer

LEASE = 1.0
# The cancelling timeout is longer than the lease, so a silent agent's run is the lease's to end.
SHORT = ServerSettings(agent_lease_seconds=LEASE, cancelling_timeout_seconds=2.0)
CALM_LEASE = 5.0
RECOVERY = 15.0  # bound on "recovered soon after the lease": it holds on a loaded machine


@pytest.fixture
def server(db_url):
    with APIServer(db_url, settings=SHORT) as srv:
        yield srv


@pytest.fixture
def api(server):
    return server.client()


@pytest.fixture
def flow(api):
    return api.register_flow("f", "echo f")


def register(server, api, name="lost", heartbeat_period=None):
    """A client acting as a registered agent (its id in ``X-Agent-Id``) and the agent."""
    agent = api.register_agent(name=name, backend="local", labels=[], heartbeat_period=heartbeat_period)
    client = server.client()
    client.set_agent_id(agent["id"])
    return client, agent


def claim(client, api, flow, **create):
    run = api.create_flow_run(flow_id=flow["id"], **create)
    return client.set_flow_run_state(run["id"], version=1, state="Submitted")


def deploy(client, run):
    client.set_deployment(run["id"], {"backend": "local", "platform_id": "42"})
    return client.set_flow_run_state(run["id"], version=run["version"], state="Running")


def wait_for(api, run_id, state, timeout=RECOVERY):
    found = wait_until(lambda: api.get_flow_run(run_id)["state"]["type"] == state, timeout, interval=0.1)
    run = api.get_flow_run(run_id)
    assert found, f"run {run_id} is {run['state']} after {timeout}s, not {state}"
    return run


def test_a_silent_agents_undeployed_run_goes_back_to_scheduled(server, api, flow):
    client, _agent = register(server, api)
    run = claim(client, api, flow)

    back = wait_for(api, run["id"], "Scheduled")

    assert back["agent_id"] is None
    assert "lost" in back["state"]["message"]
    assert "lease expired" in back["state"]["message"]
    assert back["attempt"] == 1  # not a retry: it never ran


def test_a_silent_agents_running_run_fails_naming_the_agent_and_when_it_went_silent(server, api, flow):
    client, agent = register(server, api)
    run = deploy(client, claim(client, api, flow))

    failed = wait_for(api, run["id"], "Failed")

    message = failed["state"]["message"]
    assert "lost" in message
    assert pendulum.parse(agent["last_heartbeat"]).isoformat() in message


def test_a_silent_agents_deployed_submitted_run_fails(server, api, flow):
    client, _ = register(server, api)
    run = claim(client, api, flow)
    client.set_deployment(run["id"], {"backend": "local", "platform_id": "42"})

    wait_for(api, run["id"], "Failed")


def test_a_lost_run_with_retries_left_is_retried(server, api, flow):
    client, _ = register(server, api)
    run = deploy(client, claim(client, api, flow, max_retries=1))

    retried = wait_for(api, run["id"], "Scheduled")

    assert retried["attempt"] == 2
    assert [h["type"] for h in api.flow_run_states(run["id"])] == [
        "Scheduled",
        "Submitted",
        "Running",
        "Failed",
        "Scheduled",
    ]


def test_a_silent_agents_cancelling_run_is_cancelled(server, api, flow):
    client, _ = register(server, api)
    run = deploy(client, claim(client, api, flow, max_retries=3))
    api.cancel_flow_run(run["id"])

    cancelled = wait_for(api, run["id"], "Cancelled")

    assert "lost" in cancelled["state"]["message"]


def test_an_agent_that_heartbeats_keeps_its_runs(db_url):
    # A longer lease than the other tests': heartbeats 0.2 s apart must keep it on a loaded machine.
    lease = 3.0
    with APIServer(db_url, settings=ServerSettings(agent_lease_seconds=lease)) as server:
        api = server.client()
        flow = api.register_flow("f", "echo f")
        client, agent = register(server, api)
        stop = threading.Event()

        def beat():
            while not stop.wait(0.2):
                client.agent_heartbeat(agent["id"])

        beater = threading.Thread(target=beat)
        beater.start()
        try:
            run = deploy(client, claim(client, api, flow))
            time.sleep(lease * 3)
            assert api.get_flow_run(run["id"])["state"]["type"] == "Running"
        finally:
            stop.set()
            beater.join()


def test_a_longer_heartbeat_period_stretches_the_lease(server, api, flow):
    client, agent = register(server, api, heartbeat_period=2.0)  # lease: 3 x 2 s
    run = deploy(client, claim(client, api, flow))

    time.sleep(3.0)
    assert api.get_flow_run(run["id"])["state"]["type"] == "Running"
    assert pendulum.parse(api.list_agents()[0]["lease_until"]) >= pendulum.parse(agent["last_heartbeat"]).add(
        seconds=5.9
    )


def test_the_heartbeat_after_a_recovery_says_the_lease_expired_once(server, api, flow):
    client, agent = register(server, api)
    run = deploy(client, claim(client, api, flow))
    wait_for(api, run["id"], "Failed")

    assert client.agent_heartbeat(agent["id"])["lease_expired"] is True
    assert client.agent_heartbeat(agent["id"])["lease_expired"] is False


def test_a_timely_heartbeat_does_not_say_the_lease_expired(server, api):
    client, agent = register(server, api)

    assert client.agent_heartbeat(agent["id"])["lease_expired"] is False


def test_an_agent_back_in_time_still_owns_its_runs(server, api, flow):
    client, agent = register(server, api)
    run = deploy(client, claim(client, api, flow))
    client.agent_heartbeat(agent["id"])

    again = api.register_agent(name="lost", backend="local", labels=[])

    assert again["id"] == agent["id"]
    assert api.get_flow_run(run["id"])["agent_id"] == agent["id"]


def test_agents_list_whether_they_are_alive(server, api):
    register(server, api)

    (listed,) = api.list_agents()
    assert listed["alive"] is True
    assert wait_until(lambda: api.list_agents()[0]["alive"] is False, RECOVERY, interval=0.1)


# --- leaving -------------------------------------------------------------------------------


@pytest.fixture
def calm_server(db_url):
    """A server whose lease outlasts a slow test step: its sweep cannot act before the test does."""
    with APIServer(db_url, settings=ServerSettings(agent_lease_seconds=CALM_LEASE)) as srv:
        yield srv


def test_leaving_hands_back_undeployed_runs_at_once(calm_server):
    server = calm_server
    api = server.client()
    flow = api.register_flow("f", "echo f")
    client, agent = register(server, api)
    run = claim(client, api, flow)

    answer = client.leave_agent(agent["id"])

    assert answer["handed_back"] == [run["id"]]
    back = api.get_flow_run(run["id"])
    assert (back["state"]["type"], back["agent_id"]) == ("Scheduled", None)
    assert "left" in back["state"]["message"]


def test_leaving_keeps_deployed_runs_within_the_lease(calm_server):
    server = calm_server
    api = server.client()
    flow = api.register_flow("f", "echo f")
    client, agent = register(server, api)
    run = deploy(client, claim(client, api, flow))

    assert client.leave_agent(agent["id"])["handed_back"] == []

    assert api.get_flow_run(run["id"])["state"]["type"] == "Running"
    wait_for(api, run["id"], "Failed", timeout=CALM_LEASE + RECOVERY)  # not re-attached within the lease


def test_an_agent_that_left_is_listed_as_left(server, api):
    client, agent = register(server, api)
    client.leave_agent(agent["id"])

    (listed,) = api.list_agents()
    assert listed["left"] is not None
    assert listed["alive"] is False


def test_registering_after_leaving_does_not_report_a_previous_heartbeat(server, api):
    client, agent = register(server, api)
    first = api.register_agent(name="lost", backend="local", labels=[])
    assert first["previous_heartbeat"] is not None  # without leaving, the name looks in use
    client.leave_agent(agent["id"])

    again = api.register_agent(name="lost", backend="local", labels=[])

    assert again["id"] == agent["id"]
    assert "previous_heartbeat" not in again
    assert api.list_agents()[0]["left"] is None


def test_an_agent_may_not_leave_for_another(server, api):
    client, _ = register(server, api, name="a")
    _, other = register(server, api, name="b")

    response = requests.post(
        f"{server.url}/api/agents/{other['id']}/leave",
        json={},
        headers={"X-Agent-Id": client.session.headers["X-Agent-Id"]},
        timeout=10,
    )

    assert response.status_code == 403, response.text


# --- cancelling timeout --------------------------------------------------------------------


def test_a_run_cancelling_with_no_agent_is_cancelled_after_the_timeout(server, api, flow):
    run = api.create_flow_run(flow_id=flow["id"])
    api.set_flow_run_state(run["id"], version=1, state="Running")  # no agent ever claimed it
    api.cancel_flow_run(run["id"])

    cancelled = wait_for(api, run["id"], "Cancelled")

    assert "no live agent" in cancelled["state"]["message"]


def test_a_run_cancelling_with_a_live_agent_is_left_to_the_agent(db_url, flow_name="f"):
    settings = ServerSettings(agent_lease_seconds=60, cancelling_timeout_seconds=0.3)
    with APIServer(db_url, settings=settings) as server:
        api = server.client()
        flow = api.register_flow(flow_name, "echo f")
        client, _ = register(server, api)
        run = deploy(client, claim(client, api, flow))
        api.cancel_flow_run(run["id"])

        time.sleep(1.5)
        assert api.get_flow_run(run["id"])["state"]["type"] == "Cancelling"


# --- several servers on one PostgreSQL -----------------------------------------------------

AGENTS = 6
RUNS_EACH = 5


@pytest.mark.postgres
def test_two_servers_sweeping_one_database_recover_each_run_once_and_retry_it_once(postgres_url):
    # A longer lease, renewed while each agent's runs are set up, so that none runs out early.
    settings = ServerSettings(agent_lease_seconds=3.0, cancelling_timeout_seconds=60)
    with APIServer(postgres_url, settings=settings) as a, APIServer(postgres_url, settings=settings) as b:
        api = a.client()
        flow = api.register_flow("f", "echo f")
        runs = []
        for i in range(AGENTS):
            client, agent = register(a if i % 2 else b, api, name=f"lost-{i}")
            for _ in range(RUNS_EACH):
                client.agent_heartbeat(agent["id"])
                runs.append(deploy(client, claim(client, api, flow, max_retries=1))["id"])

        for run_id in runs:
            wait_for(api, run_id, "Scheduled", timeout=30)

        for run_id in runs:
            history = Counter(h["type"] for h in api.flow_run_states(run_id))
            assert history == {"Scheduled": 2, "Submitted": 1, "Running": 1, "Failed": 1}, history
        assert a.service.sweeper.sweeps > 0
        assert b.service.sweeper.sweeps > 0
        recovered = a.service.sweeper.recovered["Failed"] + b.service.sweeper.recovered["Failed"]
        assert recovered == len(runs)


@pytest.mark.postgres
def test_a_run_left_by_an_agent_on_server_a_is_claimed_through_server_b(postgres_url):
    with APIServer(postgres_url, settings=SHORT) as a, APIServer(postgres_url, settings=SHORT) as b:
        api = a.client()
        flow = api.register_flow("f", "echo f")
        lost, _ = register(a, api, name="lost")
        run = claim(lost, api, flow)
        survivor, _ = register(b, b.client(), name="survivor")

        items = survivor.get_queue([], pendulum.now("UTC"), wait_seconds=20, claim=True)

        assert [(r["id"], r["state"]["type"]) for r in items] == [(run["id"], "Submitted")]
