"""The client's retry pauses end when its owner stops: no sleeping through a SIGTERM."""

from __future__ import annotations

import threading
import time

import pytest

from agent_core.client import APIClient
from agent_core.errors import APIUnavailable
from tests.core.test_health import free_port


def test_a_retry_pause_ends_at_once_when_the_stop_event_is_set() -> None:
    client = APIClient(f"http://127.0.0.1:{free_port()}", retries=3, backoff=5.0)
    client.stop_event = threading.Event()
    threading.Timer(0.2, client.stop_event.set).start()

    started = time.monotonic()
    with pytest.raises(APIUnavailable):
        client.hello()

    assert time.monotonic() - started < 3.0  # not the 5 + 10 + 20 s of pauses


def test_an_agent_stops_its_clients_retries(make_agent) -> None:
    agent = make_agent()

    assert agent.client.stop_event is not None
    agent.stop()
    assert agent.client.stop_event.is_set()
