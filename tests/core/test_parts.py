"""The agent as a supervisor of parts: started in order, stopped in reverse, a part whose
thread dies restarted, one that keeps dying ending the agent with an error."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from agent_core import hookimpl
from agent_core.engine.parts import Part, PartFailed
from tests.core.conftest import Backend, wait_until


class DyingBeat:
    """An extension whose ``heartbeat`` raises ``SystemExit`` (which ends the heartbeat thread:
    ``call_each`` only catches ``Exception``) the first ``deaths`` times, then beats normally."""

    name = "dying-beat"

    def __init__(self, deaths: int) -> None:
        self.deaths = deaths
        self.calls = 0
        self.beats_after = 0
        self._lock = threading.Lock()

    @hookimpl
    def heartbeat(self, agent: Any) -> None:
        with self._lock:
            self.calls += 1
            dying = self.calls <= self.deaths
            if not dying:
                self.beats_after += 1
        if dying:
            raise SystemExit(f"heartbeat hook exits (call {self.calls})")


def test_every_part_has_the_part_shape(make_agent) -> None:
    agent = make_agent()

    for part in (agent.poller, agent.pool, agent.monitor, agent.state_writer, agent.heartbeat, agent.events):
        assert isinstance(part, Part), part
        assert part.name


def test_parts_are_stopped_in_the_reverse_of_their_start_order(make_agent) -> None:
    agent = make_agent()
    thread = make_agent.start(agent)
    wait_until(lambda: agent.polls >= 1)
    started = agent.parts.names

    agent.stop()
    thread.join(20)

    assert started[0] == "registration" and started[-1] == "poller"
    assert agent.parts.stop_order == list(reversed(started))


def test_a_part_whose_thread_dies_is_restarted_and_the_error_names_it(
    make_agent, caplog: pytest.LogCaptureFixture
) -> None:
    beat = DyingBeat(deaths=1)
    agent = make_agent([Backend(), beat], start=True)

    wait_until(lambda: beat.beats_after >= 2, timeout=20)

    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("the heartbeat part is not running" in message for message in errors), errors
    assert not agent.stopping


def test_a_dead_part_makes_liveness_and_readiness_fail_until_it_is_restarted(make_agent) -> None:
    beat = DyingBeat(deaths=1)
    agent = make_agent([Backend(), beat], start=True)

    live, problems = wait_until(lambda: (answer := agent.liveness()) and "heartbeat" in answer[1] and answer)
    ready, _ = agent.readiness()
    wait_until(lambda: beat.beats_after >= 1, timeout=20)

    assert (live, ready) == (False, False)
    assert "the heartbeat thread" in problems["heartbeat"]
    assert "heartbeat" not in agent.liveness()[1]


def test_a_part_that_keeps_dying_stops_the_agent_with_an_error(make_agent) -> None:
    agent = make_agent([Backend(), DyingBeat(deaths=1_000)])
    thread = make_agent.start(agent)

    thread.join(40)  # dies, then 1 + 2 + 4 s of restarts, then gives up

    assert not thread.is_alive()
    error = make_agent.errors.get(agent.name)
    assert isinstance(error, PartFailed)  # an AgentError: `agent start` exits 1
    assert "heartbeat" in str(error)
    assert not agent.readiness()[0]
    assert "heartbeat" in agent.liveness()[1]
