"""Survive any answer: an API answer of the wrong shape is logged, and no part dies of it.

The agent talks to the real API server through a forwarding proxy on loopback that spoils
one kind of answer, the way a misbehaving proxy or a mismatched server would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from agent_core.client import APIClient
from agent_core.serving import RunningServer, serve_in_thread
from agent_core.testing.servers import APIServer
from tests.core.conftest import Backend, wait_until
from tests.core.test_heartbeat import Extension

Spoil = Callable[[str, dict[str, Any]], dict[str, Any] | None]


def forwarding_proxy(upstream: str, spoil: Spoil) -> Callable[..., Any]:
    """A WSGI app passing every request on to ``upstream``; ``spoil(path, answer)`` may replace
    a JSON answer (``None``: pass it as it is)."""
    session = requests.Session()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ["PATH_INFO"]
        query = environ.get("QUERY_STRING", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name[5:].replace("_", "-").title(): value for name, value in environ.items() if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        answer = session.request(
            environ["REQUEST_METHOD"],
            f"{upstream}{path}" + (f"?{query}" if query else ""),
            data=body,
            headers=headers,
            timeout=30,
        )
        content = answer.content
        if answer.headers.get("Content-Type", "").startswith("application/json") and answer.ok:
            spoiled = spoil(path, answer.json())
            if spoiled is not None:
                content = json.dumps(spoiled).encode()
        start_response(
            f"{answer.status_code} {answer.reason}",
            [
                ("Content-Type", answer.headers.get("Content-Type", "application/json")),
                ("Content-Length", str(len(content))),
            ],
        )
        return [content]

    return app


@pytest.fixture
def spoiling_proxy(sqlite_server: APIServer) -> Iterator[Callable[[Spoil], APIClient]]:
    """``spoiling_proxy(spoil)``: a client of the test's API server through a spoiling proxy."""
    running: list[RunningServer] = []

    def start(spoil: Spoil) -> APIClient:
        server = serve_in_thread(forwarding_proxy(sqlite_server.url, spoil), "127.0.0.1", 0, name="proxy")
        running.append(server)
        return APIClient(server.url, retries=0)

    yield start
    for server in running:
        server.stop()


def cancelling_of_the_wrong_shape(path: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    if path.endswith("/heartbeat"):
        return {**answer, "cancelling": [{"id": "no other field"}, 42]}
    return None


def test_a_heartbeat_answer_of_the_wrong_shape_ends_neither_the_heartbeat_nor_the_agent(
    spoiling_proxy: Callable[[Spoil], APIClient], make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    beats = Extension("beats")
    agent = make_agent([Backend(), beats], client=spoiling_proxy(cancelling_of_the_wrong_shape), start=True)

    wait_until(lambda: beats.beats >= 5, timeout=20)

    assert agent.liveness()[1].get("heartbeat") is None
    assert not agent.stopping
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "API heartbeat failed" in r.getMessage()]
    assert errors
    assert not [r for r in caplog.records if "thread died" in r.getMessage()]
