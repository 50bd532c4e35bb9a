"""The heartbeat thread and the "all"-kind hooks: every plugin is called, a failing one
neither stops the others nor the agent."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from agent_core import hookimpl
from agent_core.client import APIClient
from agent_core.engine.hooks import call_each
from agent_core.plugins import get_plugin_manager
from tests.core.conftest import Backend, create_run, wait_until


class Extension:
    """An extension plugin counting its heartbeats and shutdowns; ``fail`` makes both raise."""

    def __init__(self, name: str, fail: bool = False, record: list[str] | None = None) -> None:
        self.name = name
        self.fail = fail
        self.beats = 0
        self.threads: set[str] = set()
        self.record = record if record is not None else []

    @hookimpl
    def heartbeat(self, agent: Any) -> None:
        self.beats += 1
        self.threads.add(threading.current_thread().name)
        if self.fail:
            raise RuntimeError(f"{self.name} heartbeat broke")

    @hookimpl
    def on_shutdown(self, agent: Any) -> None:
        self.record.append(self.name)
        if self.fail:
            raise RuntimeError(f"{self.name} shutdown broke")


def test_the_heartbeat_hook_is_called_on_every_plugin_on_the_heartbeat_thread(make_agent) -> None:
    extensions = [Extension("ext-a"), Extension("ext-b")]
    make_agent([Backend(), *extensions], start=True)

    wait_until(lambda: all(ext.beats >= 2 for ext in extensions))

    assert all(ext.threads == {"heartbeat"} for ext in extensions)


def test_a_raising_heartbeat_neither_stops_the_others_nor_the_agent(
    make_agent, sqlite_api: APIClient, caplog: pytest.LogCaptureFixture
) -> None:
    broken, healthy = Extension("broken", fail=True), Extension("healthy")
    backend = Backend()
    make_agent([backend, broken, healthy], start=True)

    wait_until(lambda: broken.beats >= 3 and healthy.beats >= 3)
    run = create_run(sqlite_api)

    wait_until(lambda: run["id"] in backend.deployed_ids(), timeout=15)
    assert any("heartbeat hook of plugin 'broken' failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_the_api_heartbeat_keeps_the_agents_last_seen_current(make_agent, sqlite_api: APIClient) -> None:
    agent = make_agent(start=True)
    wait_until(lambda: agent.id)
    first = sqlite_api.list_agents()[0]["last_heartbeat"]

    wait_until(lambda: sqlite_api.list_agents()[0]["last_heartbeat"] > first)


def test_on_shutdown_of_every_plugin_runs_even_if_one_raises(make_agent) -> None:
    record: list[str] = []
    extensions = [Extension(name, fail=name == "middle", record=record) for name in ("first", "middle", "last")]
    agent = make_agent([Backend(), *extensions], max_polls=1)
    thread = make_agent.start(agent)

    thread.join(10)

    assert sorted(record) == ["first", "last", "middle"]
    assert agent.name not in make_agent.errors


def test_call_each_collects_results_and_skips_failures(caplog: pytest.LogCaptureFixture) -> None:
    class Answer:
        def __init__(self, name: str, answer: Any) -> None:
            self.name, self.answer = name, answer

        @hookimpl
        def preflight(self, agent: Any) -> Any:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

    plugins = [Answer("one", ["a"]), Answer("two", ValueError("no")), Answer("three", None), Answer("four", ["d"])]
    pm = get_plugin_manager(None, load_entrypoints=False, plugins=plugins)

    with caplog.at_level(logging.ERROR):
        results = call_each(pm, "preflight", agent=None)

    assert sorted(results) == [["a"], ["d"]]
    assert [r.getMessage() for r in caplog.records] == ["preflight hook of plugin 'two' failed"]


def test_no_heartbeat_hook_runs_during_or_after_on_shutdown(make_agent) -> None:
    """Regression: shutdown called on_shutdown before joining the heartbeat thread."""
    events: list[str] = []
    beating = threading.Event()

    class SlowBeat:
        name = "slow-beat"

        @hookimpl
        def heartbeat(self, agent: Any) -> None:
            events.append("heartbeat-start")
            beating.set()
            time.sleep(0.5)
            events.append("heartbeat-end")

        @hookimpl
        def on_shutdown(self, agent: Any) -> None:
            events.append("on_shutdown")

    agent = make_agent([Backend(), SlowBeat()])
    thread = make_agent.start(agent)
    assert beating.wait(5)

    agent.stop()  # while a heartbeat hook is running
    thread.join(10)

    assert events[-1] == "on_shutdown"
