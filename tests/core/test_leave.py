"""A clean exit tells the API the agent left: no lease wait, no "name in use" warning."""

from __future__ import annotations

import logging

import pytest

from agent_core.client import APIClient
from tests.core.conftest import wait_until


def agent_named(client: APIClient, name: str) -> dict:
    (agent,) = [a for a in client.list_agents() if a["name"] == name]
    return agent


def test_a_clean_exit_marks_the_agent_left_on_the_api(make_agent, sqlite_api: APIClient) -> None:
    agent = make_agent(name="leaver")
    thread = make_agent.start(agent)
    wait_until(lambda: agent.polls >= 1)

    agent.stop()
    thread.join(20)

    left = agent_named(sqlite_api, "leaver")
    assert left["left"] is not None
    assert left["alive"] is False


def test_a_restart_after_a_clean_exit_does_not_warn_that_the_name_is_in_use(
    make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    first = make_agent(name="same")
    thread = make_agent.start(first)
    wait_until(lambda: first.polls >= 1)
    first.stop()
    thread.join(20)

    second = make_agent(name="same", start=True)
    wait_until(lambda: second.polls >= 1)

    assert not [r for r in caplog.records if r.levelno == logging.WARNING and "sent a heartbeat" in r.getMessage()]
