"""The poller: asks the API for ready runs and hands the new ones to the agent.

Against a server with ``long_poll`` the loop long-polls: one ``POST /api/queue`` held by the
server until a run is ready or ``long_poll_seconds`` pass, so an idle agent picks a new run up
within a round trip and costs a couple of requests a minute. With ``claim`` a poll claims the runs due now in its
answer (one round trip instead of a queue read and a claim per run); a claim
whose answer is lost is never sent again blindly: the agent reads back the runs the API says
it holds (``list_flow_runs(agent_id=...)``) and deploys the ones it does not know.

The long poll itself never claims: the server may answer it after the agent stopped listening
(shutting down), and runs claimed then would belong to an agent that is gone. It only waits
until runs are ready; a plain claiming poll follows at once (one more round trip on pickup).

The long poll runs on a thread of its own (``long-poll``) so that the loop can still be woken
at once: a poke makes the loop send an ordinary poll right away while the long poll stays
outstanding (its answer is handled whenever it comes), and a stop ends the loop without
waiting for it. Errors, malformed answers and servers without ``long_poll`` keep the
0.25 -> 10 s backoff of :mod:`agent_core.engine.backoff`.

Spin guard: the server answers a long poll at once while any ready run is in the window, and a
run fetched early (due later, held by a deploy thread until its start time) stays ready until
it is claimed. So while the agent holds such runs it long-polls with ``before = now``, and an
answer that comes back early with nothing new backs off like an empty poll.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_core.engine.backoff import Backoff
from agent_core.errors import AgentError, APIUnavailable
from agent_core.models import FlowRun
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.engine.agent import Agent

log = logging.getLogger(__name__)

# An answer to a long poll of W seconds that comes sooner than this share of W with nothing
# new is "early": it backs off instead of polling again at once.
EARLY_SHARE = 0.5
# Added to the wait for the read timeout of a long poll and for how long the loop waits for it.
LONG_POLL_MARGIN = 5.0


@dataclass
class _Outstanding:
    """One long poll on its thread: set ``done`` (and wakes the loop) once it is handled."""

    wait: float
    started: float
    done: threading.Event = field(default_factory=threading.Event)
    found: bool = False
    error: BaseException | None = None


class Poller:
    """The agent's poll loop: a part (:mod:`agent_core.engine.parts`) on the ``poll`` thread,
    or on the thread that calls :meth:`loop` (tests driving it by hand)."""

    name = "poller"

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self._thread: threading.Thread | None = None
        self._finished = False
        self._outstanding: _Outstanding | None = None
        self._claims_unknown = False  # a claim's answer was lost: read back before trusting the queue
        self._features: frozenset[str] | None = None
        self._max_wait = 30.0

    # --- what the server can do -----------------------------------------------------------

    def learn_features(self) -> None:
        """Read the server's features (after a successful ``hello``); an old server has none."""
        client = self.agent.client
        try:
            self._features = client.features
            hello = getattr(client, "_hello", None) or {}
            max_wait = hello.get("max_wait_seconds")
            if isinstance(max_wait, int | float) and max_wait > 0:
                self._max_wait = float(max_wait)
        except AgentError as exc:
            log.warning("could not read the API's features (%s): polling as with an older server", exc)
            self._features = frozenset()

    @property
    def features(self) -> frozenset[str]:
        return self._features or frozenset()

    @property
    def long_poll_seconds(self) -> float:
        """How long one poll may wait on the server (0: the server cannot, or it is turned off)."""
        settings = self.agent.settings
        if "long_poll" not in self.features or settings.max_polls is not None or settings.until_idle:
            return 0.0
        return max(0.0, min(self.agent.settings.long_poll_seconds, self._max_wait))

    @property
    def claims(self) -> bool:
        return "claim" in self.features

    # --- the part -------------------------------------------------------------------------

    def start(self) -> None:
        self._finished = False
        self._thread = threading.Thread(target=self._run, name="poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.loop()
        self._finished = True
        self.agent.stop()  # --max-polls or --until-idle: the loop's end is the agent's

    def alive(self) -> bool:
        thread = self._thread
        return thread is None or thread.is_alive() or self._finished or self.agent.stopping

    def stop(self, deadline: float) -> None:
        """Wait (until ``deadline``) for the poll in progress: runs it claimed reach the deployer
        before the deployer drains. An outstanding long poll is not waited for (it never claims)."""
        self.agent._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- the loop -------------------------------------------------------------------------

    def loop(self) -> None:
        agent = self.agent
        backoff = Backoff()
        remaining = agent.settings.max_polls
        while not agent.stopping and (remaining is None or remaining > 0):
            wait = self.long_poll_seconds
            try:
                if wait:
                    found, delay = self._long_poll_round(wait, backoff)
                else:
                    agent._wake.clear()
                    found = self.poll_once()
                    delay = backoff.next_delay(found)
            except Exception:  # any answer, any bug: the loop backs off and goes on
                agent._poll_errors += 1
                log.exception("poll round failed; backing off")
                found, delay = False, backoff.next_delay(False)
            if remaining is not None:
                remaining -= 1
            if not found and agent.settings.until_idle and agent._idle():
                agent.logger.info("No work left: stopping (--until-idle)")
                break
            if delay and not agent.stopping:
                agent.logger.debug("Next poll in %.2fs", delay)
                agent.clock.wait(agent._wake, delay)

    def _long_poll_round(self, wait: float, backoff: Backoff) -> tuple[bool, float]:
        """One long poll (or the outstanding one), or a plain poll if woken first: (found, delay)."""
        agent = self.agent
        agent._wake.clear()
        current = self._outstanding
        if current is None or current.done.is_set():
            current = self._start_long_poll(wait)
        # Real time: the request is bounded by its own read timeout, whatever the clock.
        agent._wake.wait(current.wait + agent.client.timeout + LONG_POLL_MARGIN)
        if agent.stopping:
            return False, 0.0
        if not current.done.is_set():
            # Poked: poll now, the long poll stays outstanding and is handled when it answers.
            agent._wake.clear()
            found = self.poll_once()
            return found, backoff.next_delay(found) if not found else 0.0
        self._outstanding = None
        if current.error is not None:
            return False, backoff.next_delay(False)
        if current.found and self.claims:
            # Runs are ready: claim them now, in a poll that cannot outlive this loop.
            found = self.poll_once()
            return found, backoff.next_delay(found)
        if current.found:
            return True, backoff.next_delay(True)
        took = time.monotonic() - current.started
        if took < current.wait * EARLY_SHARE:
            return False, backoff.next_delay(False)  # early and nothing new: do not spin
        backoff.next_delay(True)  # a full wait with nothing: the next one starts afresh
        return False, 0.0

    def _start_long_poll(self, wait: float) -> _Outstanding:
        current = _Outstanding(wait=wait, started=time.monotonic())
        self._outstanding = current

        def run() -> None:
            try:
                current.found = self.poll_once(wait, claim=False)
            except BaseException as exc:  # reported by the loop; never lost with the thread
                current.error = exc
                log.exception("long poll failed unexpectedly")
            finally:
                current.done.set()
                self.agent._wake.set()

        threading.Thread(target=run, name="long-poll", daemon=True).start()
        return current

    # --- one poll -------------------------------------------------------------------------

    def poll_once(self, wait: float = 0.0, *, claim: bool = True) -> bool:
        """Ask for ready runs (waiting up to ``wait`` s on the server) and hand the new ones on.

        True if any new run was handed to a deploy thread. ``claim=False`` against a server that
        claims: only look (True if a run not yet handled is ready) and leave the claim to a
        plain poll; a waiting request never claims, since the server may answer it after the
        agent stopped listening (it would claim runs for an agent that is gone).
        """
        agent = self.agent
        agent._polls += 1
        agent._last_poll_attempt = agent.clock.monotonic()
        found = False
        if self._claims_unknown:
            found = self._read_back_claims()
        now = agent.clock.now()
        # Holding runs fetched early: only runs due now may end the wait (see the module doc).
        before = now if wait and agent.holding_early_runs() else now.add(seconds=agent.settings.prefetch_seconds)
        look_only = not claim and self.claims
        claim = claim and self.claims and agent.may_claim()
        limit = max(agent.pool.workers * 2, 10)
        try:
            items = agent.client.get_queue(agent.labels, before, limit=limit, wait_seconds=wait or None, claim=claim)
        except APIUnavailable as exc:
            agent._poll_errors += 1
            if claim and not _never_sent(exc):
                self._claims_unknown = True
            agent._note_api_failure(exc)
            return found
        except AgentError as exc:
            agent._poll_errors += 1
            agent.logger.error("Failed to query for ready flow runs: %s", exc)
            return found
        agent._note_api_success()
        try:
            runs = [FlowRun.from_api(item) for item in items]
        except (KeyError, TypeError, ValueError) as exc:
            agent._poll_errors += 1
            agent.logger.error("Bad API answer to the queue poll (%s: %s); backing off", type(exc).__name__, exc)
            if claim:
                self._claims_unknown = True  # some may have been claimed for us
            return found
        if look_only:
            return any(not agent.is_handled(run.id) for run in runs) or found
        return agent.accept_runs(runs) or found

    def _read_back_claims(self) -> bool:
        """After a lost claim answer: deploy the runs the API says we claimed and nobody handles."""
        agent = self.agent
        try:
            mine = agent.client.list_flow_runs(agent_id=agent.id, states=[State.SUBMITTED.value])
            runs = [FlowRun.from_api(item) for item in mine]
        except (AgentError, KeyError, TypeError, ValueError) as exc:
            log.debug("could not read back claimed runs yet: %s", exc)
            return False
        self._claims_unknown = False
        unknown = [run for run in runs if not run.deployment and not agent.is_handled(run.id)]
        if unknown:
            agent.logger.info("Found %d run(s) claimed by a poll whose answer was lost", len(unknown))
        return agent.accept_runs(unknown)


def _never_sent(exc: Any) -> bool:
    """Whether the request surely never reached the server (nothing can have been claimed)."""
    detail = str(getattr(exc, "detail", "") or exc).lower()
    return "connection refused" in detail
