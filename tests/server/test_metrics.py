"""``GET /metrics`` of a real server while runs go through: the counters match what happened.
And the access log: one line per request, route templates, never a key."""

import logging
import threading
import time

import pendulum
import requests
from prometheus_client.parser import text_string_to_metric_families

from agent_core.server.settings import ServerSettings
from agent_core.testing.servers import APIServer


def scrape(server, **headers):
    response = requests.get(f"{server.url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_metrics_count_requests_runs_queue_and_agents(sqlite_server):
    api = sqlite_server.client()
    flow = api.register_flow("f", "echo f")
    runs = [api.create_flow_run(flow_id=flow["id"]) for _ in range(5)]
    api.create_flow_run(flow_id=flow["id"], scheduled_start_time=pendulum.now("UTC").add(hours=1).isoformat())
    agent = sqlite_server.client()
    agent.set_agent_id(api.register_agent(name="a", backend="local", labels=[])["id"])
    claimed = agent.get_queue([], pendulum.now("UTC"), limit=2, claim=True)
    agent.set_flow_run_state(claimed[0]["id"], version=2, state="Running")
    api.get_flow_run(runs[4]["id"])
    requests.get(f"{sqlite_server.url}/api/no-such-thing", timeout=10)

    samples = scrape(sqlite_server)

    created = value(samples, "agent_api_requests_total", method="POST", route="/api/flow-runs", status="201")
    assert created == 6
    reads = value(samples, "agent_api_requests_total", method="GET", route="/api/flow-runs/{id}", status="200")
    assert reads == 1
    assert value(samples, "agent_api_requests_total", method="GET", route="(unmatched)", status="404") == 1
    assert value(samples, "agent_api_request_duration_seconds_count", method="POST", route="/api/queue") == 1
    assert value(samples, "agent_api_flow_runs", state="Scheduled") == 4
    assert value(samples, "agent_api_flow_runs", state="Submitted") == 1
    assert value(samples, "agent_api_flow_runs", state="Running") == 1
    assert value(samples, "agent_api_queue_depth") == 3  # due now; the one in an hour is not
    assert value(samples, "agent_api_agents_alive") == 1
    assert value(samples, "agent_api_storage_up") == 1


def test_waiting_long_polls_are_counted_while_they_wait(sqlite_server):
    client = sqlite_server.client()
    done = threading.Event()
    thread = threading.Thread(
        target=lambda: (client.get_queue(["idle"], pendulum.now("UTC"), wait_seconds=1.5), done.set())
    )
    thread.start()
    deadline = time.monotonic() + 10
    while value(scrape(sqlite_server), "agent_api_long_polls_waiting") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    thread.join(20)

    assert done.is_set()
    assert value(scrape(sqlite_server), "agent_api_long_polls_waiting") == 0


def test_recovered_runs_are_counted(sqlite_url):
    with APIServer(sqlite_url, settings=ServerSettings(agent_lease_seconds=0.5)) as server:
        api = server.client()
        flow = api.register_flow("f", "echo f")
        agent = server.client()
        agent.set_agent_id(api.register_agent(name="lost", backend="local", labels=[])["id"])
        api.create_flow_run(flow_id=flow["id"])
        agent.get_queue([], pendulum.now("UTC"), claim=True)

        deadline = time.monotonic() + 15
        while value(scrape(server), "agent_api_runs_recovered_total", state="Scheduled") != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_metrics_need_an_admin_key_or_the_token_on_a_server_with_auth(sqlite_url):
    with APIServer(sqlite_url, auth=True, settings=ServerSettings(metrics_token="scrape-me")) as server:
        _, admin = server.store.create_key("default", "admin")
        _, runner = server.store.create_key("default", "runner")
        url = f"{server.url}/metrics"

        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {runner}"}, timeout=10).status_code == 403
        assert requests.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Authorization": "Bearer scrape-me"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401


def test_the_access_log_has_method_route_status_duration_and_tenant_but_no_key(sqlite_url, caplog):
    caplog.set_level(logging.INFO, logger="agent_core.server.access")
    with APIServer(sqlite_url, auth=True) as server:
        _, key = server.store.create_key("default", "admin")
        client = server.client(key)
        flow = client.register_flow("f", "echo f")
        run = client.create_flow_run(flow_id=flow["id"])
        client.get_flow_run(run["id"])

    lines = [r.getMessage() for r in caplog.records if r.name == "agent_core.server.access"]
    (read,) = [line for line in lines if line.startswith("GET /api/flow-runs/{id} ")]
    assert read.split()[2] == "200"
    assert read.split()[3].endswith("ms")
    assert "tenant=default" in read
    assert run["id"] not in read
    assert not [line for line in lines if key in line or key[:12] in line]
