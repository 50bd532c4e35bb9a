"""``POST /api/queue`` with ``wait_seconds``: answer at once when runs are ready, else wait for them.

The wait ends when a run becomes ready for the caller's labels (woken by
:mod:`agent_core.server.wakeups`), when the start time of a Scheduled run enters the window
(a timer set to the next such start time, not a busy loop), or when ``wait_seconds`` have
passed (then the answer is empty).

The window slides with the wait: an agent asking for runs due before ``now + 10 s`` and
waiting 30 s gets a run due at ``now + 25 s`` after 15 s, when it is 10 s away, as it would
have by polling.
"""

from __future__ import annotations

import time
from typing import Any

import pendulum

from agent_core.server.storage import Store
from agent_core.server.wakeups import Wakeups

# Woken a little after a start time, so the run is due (by the database's comparison) then.
_TIMER_SLACK = 0.005


def answer_queue(
    store: Store,
    wakeups: Wakeups,
    tenant_id: str,
    labels: list[str],
    before: pendulum.DateTime,
    limit: int,
    *,
    wait_seconds: float = 0.0,
    claim_for: str | None = None,
) -> list[dict[str, Any]]:
    """The queue's answer; ``claim_for`` an agent id: claim the runs due now for it (``claim: true``)."""

    def fetch(window_end: pendulum.DateTime) -> list[dict[str, Any]]:
        if claim_for is not None:
            return store.claim(tenant_id, claim_for, labels, window_end, limit)
        return store.queue(tenant_id, labels, window_end, limit)

    if wait_seconds <= 0:
        return fetch(before)
    started = time.monotonic()
    deadline = started + wait_seconds
    with wakeups.waiter(tenant_id, labels) as waiter:
        while True:
            if waiter is not None:
                waiter.event.clear()  # before looking, so a wake-up during the look is kept
            window_end = before.add(seconds=time.monotonic() - started)
            items = fetch(window_end)
            remaining = deadline - time.monotonic()
            if items or remaining <= 0 or waiter is None or wakeups.closed:
                return items
            timeout = remaining
            upcoming = store.next_start(tenant_id, labels, window_end)
            if upcoming is not None:
                timeout = min(timeout, (upcoming - window_end).total_seconds() + _TIMER_SLACK)
            waiter.event.wait(max(0.0, timeout))
