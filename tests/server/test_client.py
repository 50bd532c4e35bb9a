"""``APIClient`` against real servers: features, the connection pool, and answers that are not
the JSON a call expects (``BadAPIAnswer``, backed off like an outage)."""

import json
import logging
import threading
from collections.abc import Iterator

import pendulum
import pytest

from agent_core.client import APIClient
from agent_core.errors import APIUnavailable, BadAPIAnswer
from agent_core.serving import serve_in_thread


def test_hello_lists_the_features_and_bounds_of_this_server(api):
    hello = api.hello()

    assert set(hello["features"]) == {"long_poll", "claim", "leases", "leave", "state_deployment"}
    assert hello["max_wait_seconds"] == 30
    assert hello["agent_lease_seconds"] == 180


def test_the_client_knows_the_servers_features(api):
    assert api.features == {"long_poll", "claim", "leases", "leave", "state_deployment"}


def test_features_come_from_one_hello(api_server):
    client = api_server.client()

    assert "claim" in client.features
    assert "leave" in client.features

    hellos = {"method": "GET", "route": "/api/hello", "status": "200"}
    assert api_server.service.metrics.registry.get_sample_value("agent_api_requests_total", hellos) == 1


def test_a_pool_as_large_as_the_callers_threads_keeps_every_connection(api_server, caplog):
    threads = 16
    client = api_server.client(pool_size=threads)
    barrier = threading.Barrier(threads)

    def call():
        barrier.wait(timeout=10)
        client.get_queue([], pendulum.now("UTC"), wait_seconds=0.5)

    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_pool_smaller_than_the_callers_threads_drops_connections(api_server, caplog):
    # The other side of the test above, so that it can fail.
    threads = 16
    client = api_server.client(pool_size=2)
    barrier = threading.Barrier(threads)

    def call():
        barrier.wait(timeout=10)
        client.get_queue([], pendulum.now("UTC"), wait_seconds=0.5)

    caplog.set_level(logging.WARNING, logger="urllib3.connectionpool")
    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)

    assert [r for r in caplog.records if "pool is full" in r.getMessage()]


# --- answers that are not the expected JSON ---------------------------------------------


def fixed_answer(status: str, content_type: str, body: bytes):
    """A WSGI app answering every request the same way, like a misconfigured proxy."""

    def app(environ, start_response):
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [body]

    return app


@pytest.fixture
def proxy() -> Iterator:
    running = []

    def start(status: str, content_type: str, body: bytes) -> APIClient:
        server = serve_in_thread(fixed_answer(status, content_type, body), "127.0.0.1", 0, name="proxy")
        running.append(server)
        return APIClient(server.url, retries=0)

    yield start
    for server in running:
        server.stop()


def test_an_html_page_answered_200_is_a_bad_api_answer(proxy):
    client = proxy("200 OK", "text/html", b"<html><body>Sign in to the proxy</body></html>")

    with pytest.raises(BadAPIAnswer, match="text/html") as caught:
        client.hello()

    assert isinstance(caught.value, APIUnavailable)
    assert "Sign in" in str(caught.value)


@pytest.mark.parametrize("body", [[1, 2], "text", 3, None])
def test_json_that_is_not_an_object_is_a_bad_api_answer(proxy, body):
    client = proxy("200 OK", "application/json", json.dumps(body).encode())

    with pytest.raises(BadAPIAnswer, match="not a JSON object"):
        client.get_flow_run("x")


@pytest.mark.parametrize(
    ("call", "key"),
    [
        (lambda c: c.get_queue([], pendulum.now("UTC")), "items"),
        (lambda c: c.list_flow_runs(), "items"),
        (lambda c: c.agent_heartbeat("a"), "cancelling"),
        (lambda c: c.read_logs("r"), "next_cursor"),
        (lambda c: c.register_agent(name="a", backend="local", labels=[]), "id"),
    ],
    ids=["queue", "runs", "heartbeat", "logs", "register"],
)
def test_an_object_missing_the_calls_key_is_a_bad_api_answer_naming_it(proxy, call, key):
    client = proxy("200 OK", "application/json", b"{}")

    with pytest.raises(BadAPIAnswer, match=key):
        call(client)


def test_an_empty_200_answer_is_a_bad_api_answer(proxy):
    client = proxy("200 OK", "application/json", b"")

    with pytest.raises(BadAPIAnswer):
        client.hello()
