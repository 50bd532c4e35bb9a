"""Flow-run states and the transitions the API allows between them."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    SCHEDULED = "Scheduled"
    SUBMITTED = "Submitted"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    CANCELLING = "Cancelling"
    CANCELLED = "Cancelled"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES

    @classmethod
    def parse(cls, value: str) -> State:
        """Case-insensitive lookup, so ``--state running`` works on the command line."""
        for state in cls:
            if state.value.lower() == value.strip().lower():
                return state
        names = ", ".join(s.value for s in cls)
        raise ValueError(f"unknown state {value!r}; expected one of {names}")


FINAL_STATES = frozenset({State.SUCCESS, State.FAILED, State.CANCELLED})

# Scheduled -> Submitted is the claim. Submitted -> Scheduled lets an agent hand a run back
# (e.g. it is shutting down before deploying). A cancelled-while-Cancelling run may still
# finish on its own first, so Cancelling accepts Success and Failed too.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.SCHEDULED: frozenset({State.SUBMITTED, State.RUNNING, State.FAILED, State.CANCELLED}),
    State.SUBMITTED: frozenset(
        {State.SCHEDULED, State.RUNNING, State.SUCCESS, State.FAILED, State.CANCELLING, State.CANCELLED}
    ),
    State.RUNNING: frozenset({State.SUCCESS, State.FAILED, State.CANCELLING, State.CANCELLED}),
    State.CANCELLING: frozenset({State.CANCELLED, State.SUCCESS, State.FAILED}),
    State.SUCCESS: frozenset(),
    State.FAILED: frozenset(),
    State.CANCELLED: frozenset(),
}


def can_transition(current: State, new: State) -> bool:
    return new in TRANSITIONS[current]
