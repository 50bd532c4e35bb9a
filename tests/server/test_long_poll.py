"""Long poll: ``POST /api/queue`` with ``wait_seconds`` answers at once when runs are ready, else
holds the request until one becomes ready for the caller's labels or the wait ends.

Bounds on "woken promptly" are seconds, not milliseconds: they hold on a loaded machine and
still tell a wake-up from a wait that ran out (``bench/queue_bench.py`` measures the latency).
"""

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pendulum
import pytest
import requests

from agent_core.server.serve import open_store
from agent_core.server.settings import ServerSettings
from agent_core.testing.servers import APIServer

WAIT = 20.0  # long enough that an answer well before it was a wake-up
PROMPT = 8.0  # "promptly", on a loaded machine


def now():
    return pendulum.now("UTC")


def waiting(client, labels=(), wait=WAIT, before=None, **kwargs):
    """Start a long poll on a thread; returns a future of (items, seconds it took)."""
    pool = ThreadPoolExecutor(1)

    def call():
        started = time.monotonic()
        items = client.get_queue(list(labels), before or now(), wait_seconds=wait, **kwargs)
        return items, time.monotonic() - started

    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


def wait_for_waiters(server, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while server.service.wakeups.waiting < count:
        assert time.monotonic() < deadline, f"{server.service.wakeups.waiting} of {count} long polls waiting"
        time.sleep(0.02)


def test_ready_runs_are_answered_at_once(api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    started = time.monotonic()

    items = api.get_queue([], now(), wait_seconds=WAIT)

    assert [r["id"] for r in items] == [run["id"]]
    assert time.monotonic() - started < PROMPT


def test_the_answer_is_empty_when_the_wait_ends_with_nothing_ready(api):
    started = time.monotonic()

    items = api.get_queue([], now(), wait_seconds=0.5)

    assert items == []
    assert time.monotonic() - started >= 0.45


def test_a_run_created_meanwhile_wakes_the_waiting_request(api_server, api, make_flow):
    flow = make_flow()
    future = waiting(api_server.client())
    wait_for_waiters(api_server, 1)

    run = api.create_flow_run(flow_id=flow["id"])

    items, seconds = future.result(timeout=WAIT + 10)
    assert [r["id"] for r in items] == [run["id"]]
    assert seconds < PROMPT


def test_a_run_put_back_to_scheduled_wakes_the_waiting_request(api_server, api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"])
    api.set_flow_run_state(run["id"], version=1, state="Submitted")
    future = waiting(api_server.client())
    wait_for_waiters(api_server, 1)

    api.set_flow_run_state(run["id"], version=2, state="Scheduled", message="handed back")

    items, seconds = future.result(timeout=WAIT + 10)
    assert [(r["id"], r["version"]) for r in items] == [(run["id"], 3)]
    assert seconds < PROMPT


def test_a_retried_run_wakes_the_waiting_request(api_server, api, make_flow):
    run = api.create_flow_run(flow_id=make_flow()["id"], max_retries=1)
    api.set_flow_run_state(run["id"], version=1, state="Running")
    future = waiting(api_server.client())
    wait_for_waiters(api_server, 1)

    api.set_flow_run_state(run["id"], version=2, state="Failed", message="exit 1")

    items, seconds = future.result(timeout=WAIT + 10)
    assert [(r["id"], r["attempt"]) for r in items] == [(run["id"], 2)]
    assert seconds < PROMPT


def test_a_run_whose_start_time_enters_the_window_is_answered_then(api_server, api, make_flow):
    start = now().add(seconds=1)
    run = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time=start.isoformat())
    asked = now()

    items = api.get_queue([], asked, wait_seconds=WAIT)

    assert [r["id"] for r in items] == [run["id"]]
    answered = now()
    assert answered >= start.subtract(seconds=0.05)
    assert (answered - start).total_seconds() < PROMPT


def test_the_window_slides_with_the_wait(api_server, api, make_flow):
    # Asked for runs due within 1 s: a run due in 2 s is answered when it is 1 s away.
    start = now().add(seconds=2)
    run = api.create_flow_run(flow_id=make_flow()["id"], scheduled_start_time=start.isoformat())

    items = api.get_queue([], now().add(seconds=1), wait_seconds=WAIT)

    assert [r["id"] for r in items] == [run["id"]]
    early = (start - now()).total_seconds()
    assert early > 0.3  # answered before its start time, within the window
    assert early < 1.5


def test_a_run_created_later_than_the_window_reschedules_the_timer(api_server, api, make_flow):
    flow = make_flow()
    future = waiting(api_server.client())
    wait_for_waiters(api_server, 1)
    start = now().add(seconds=1)

    run = api.create_flow_run(flow_id=flow["id"], scheduled_start_time=start.isoformat())

    items, _ = future.result(timeout=WAIT + 10)
    assert [r["id"] for r in items] == [run["id"]]
    assert now() >= start.subtract(seconds=0.05)


def test_a_run_the_waiter_lacks_the_labels_for_does_not_answer_it(api_server, api, make_flow):
    flow = make_flow()
    future = waiting(api_server.client(), labels=["cpu"], wait=1.0)
    wait_for_waiters(api_server, 1)

    api.create_flow_run(flow_id=flow["id"], labels=["gpu"])

    items, seconds = future.result(timeout=20)
    assert items == []
    assert seconds >= 0.95


def test_a_run_matching_the_waiters_labels_answers_it(api_server, api, make_flow):
    flow = make_flow()
    future = waiting(api_server.client(), labels=["gpu", "eu"])
    wait_for_waiters(api_server, 1)

    run = api.create_flow_run(flow_id=flow["id"], labels=["gpu"])

    items, seconds = future.result(timeout=WAIT + 10)
    assert [r["id"] for r in items] == [run["id"]]
    assert seconds < PROMPT


def test_a_run_of_another_tenant_does_not_answer_a_waiter(auth_api_server):
    _, admin_a = auth_api_server.store.create_key("default", "admin")
    other = auth_api_server.store.ensure_tenant("other")
    _, admin_b = auth_api_server.store.create_key(other, "admin")
    a, b = auth_api_server.client(admin_a), auth_api_server.client(admin_b)
    flow = b.register_flow("b-flow", "echo b")
    future = waiting(a, wait=1.0)
    wait_for_waiters(auth_api_server, 1)

    b.create_flow_run(flow_id=flow["id"])

    items, _ = future.result(timeout=20)
    assert items == []


def test_a_run_written_by_another_store_on_the_same_sqlite_file_wakes_the_waiter(sqlite_url):
    # The embedded CLI in another process writes to the server's file directly.
    with APIServer(sqlite_url) as server:
        server.client().register_flow("f", "echo f")
        future = waiting(server.client())
        wait_for_waiters(server, 1)
        other = open_store(sqlite_url)
        try:
            run, _ = other.create_run("default", {"flow_name": "f"})
        finally:
            other.engine.dispose()

        items, seconds = future.result(timeout=WAIT + 10)
        assert [r["id"] for r in items] == [run["id"]]
        assert seconds < PROMPT


@pytest.mark.postgres
def test_a_run_created_through_server_a_wakes_a_request_waiting_on_server_b(postgres_url):
    with APIServer(postgres_url) as a, APIServer(postgres_url) as b:
        flow = a.client().register_flow("f", "echo f")
        future = waiting(b.client())
        wait_for_waiters(b, 1)

        run = a.client().create_flow_run(flow_id=flow["id"])

        items, seconds = future.result(timeout=WAIT + 10)
        assert [r["id"] for r in items] == [run["id"]]
        assert seconds < PROMPT


@pytest.mark.parametrize("wait", [30.5, 60, 3600])
def test_a_wait_over_max_wait_seconds_is_a_422_naming_the_bound(api_server, wait):
    response = requests.post(f"{api_server.url}/api/queue", json={"wait_seconds": wait}, timeout=10)

    assert response.status_code == 422, response.text
    assert "wait_seconds" in response.json()["detail"]
    assert "30" in response.json()["detail"]["wait_seconds"]


@pytest.mark.parametrize("wait", [-1, "5", True, None])
def test_a_wait_that_is_not_a_non_negative_number_is_a_400(api_server, wait):
    response = requests.post(f"{api_server.url}/api/queue", json={"wait_seconds": wait}, timeout=10)

    assert response.status_code == 400, response.text
    assert "wait_seconds" in response.json()["detail"]


def test_the_clients_read_timeout_grows_by_the_wait(api_server):
    client = api_server.client(timeout=0.5)
    started = time.monotonic()

    assert client.get_queue([], now(), wait_seconds=1.5) == []
    assert time.monotonic() - started >= 1.4


def test_stopping_the_server_ends_its_waiting_requests(sqlite_url):
    server = APIServer(sqlite_url).start()
    try:
        future = waiting(server.client())
        wait_for_waiters(server, 1)
        started = time.monotonic()
        server.stop()

        items, _ = future.result(timeout=20)
        assert items == []
        assert time.monotonic() - started < PROMPT
    finally:
        server.close()


# --- waiting agents do not starve ordinary requests ---------------------------------------

IDLE_AGENTS = 50


def test_50_waiting_agents_leave_ordinary_requests_answering_promptly(sqlite_url):
    with APIServer(sqlite_url) as server:
        admin = server.client()
        flow = admin.register_flow("f", "echo f")
        clients = [server.client() for _ in range(IDLE_AGENTS)]
        # Each waits for labels of its own; the runs created below need another one.
        futures = [waiting(c, labels=[f"idle-{i}"], wait=30) for i, c in enumerate(clients)]
        wait_for_waiters(server, IDLE_AGENTS, timeout=30)

        latencies = []
        for _ in range(10):
            for call in (
                admin.hello,
                lambda: admin.create_flow_run(flow_id=flow["id"], labels=["busy"]),
                lambda: admin.list_flow_runs(limit=5),
            ):
                started = time.monotonic()
                call()
                latencies.append(time.monotonic() - started)

        assert server.service.wakeups.waiting == IDLE_AGENTS  # still all waiting meanwhile
        # Starved, these would queue behind 30 s waits; answered, they take milliseconds.
        assert max(latencies) < 5.0, sorted(latencies)[-5:]
        server.stop()
        assert all(f.result(timeout=30)[0] == [] for f in futures)


def open_idle_connections(url, count):
    """``count`` keep-alive connections that each made one request and now sit idle, as pooled
    connections of agents between their polls do."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=30)
        sock.sendall(b"GET /api/hello HTTP/1.1\r\nHost: agent\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        sockets.append(sock)
    return sockets


def test_a_new_client_is_answered_beside_more_idle_connections_than_waitress_allows_by_default(sqlite_url):
    with APIServer(sqlite_url) as server:
        idle = open_idle_connections(server.url, 130)  # waitress's default limit is 100
        try:
            started = time.monotonic()
            response = requests.get(f"{server.url}/api/hello", timeout=2 * PROMPT)

            assert response.status_code == 200
            assert time.monotonic() - started < PROMPT
        finally:
            for sock in idle:
                sock.close()


def test_a_long_poll_past_the_slots_is_answered_at_once(sqlite_url):
    with APIServer(sqlite_url, settings=ServerSettings(long_poll_slots=2)) as server:
        futures = [waiting(server.client(), labels=[f"idle-{i}"], wait=30) for i in range(2)]
        wait_for_waiters(server, 2)
        started = time.monotonic()

        assert server.client().get_queue(["x"], now(), wait_seconds=30) == []

        assert time.monotonic() - started < PROMPT
        assert server.service.wakeups.refused == 1
        server.stop()
        for future in futures:
            future.result(timeout=30)


def test_many_waiters_of_one_run_answer_it_once_when_claiming(api_server, api, make_flow):
    flow = make_flow()
    agents = []
    for i in range(8):
        client = api_server.client()
        client.set_agent_id(api.register_agent(name=f"claimer-{i}", backend="local", labels=[])["id"])
        agents.append(client)
    futures = [waiting(c, wait=1.5, claim=True) for c in agents]
    wait_for_waiters(api_server, len(agents))

    run = api.create_flow_run(flow_id=flow["id"])

    answers = [f.result(timeout=30)[0] for f in futures]
    claimed = [item for items in answers for item in items]
    assert [(r["id"], r["state"]["type"]) for r in claimed] == [(run["id"], "Submitted")]
