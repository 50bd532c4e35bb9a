"""Typed errors shared by the client, the server and the agent.

Each carries a message meant for a person: what went wrong and, where there is one, the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class AgentError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AgentError):
    """A setting is missing, malformed or contradicts another one."""


class PluginError(AgentError):
    """A plugin could not be found, loaded or validated."""


class UnknownBackend(PluginError):
    """``--backend NAME`` names no installed backend."""


class StartupError(AgentError):
    """The agent cannot start: the message says why and what to do."""


class DeploymentError(AgentError):
    """A backend could not deploy a run; the message goes to the run's logs."""


class RunConfigMismatch(DeploymentError):
    """The run's run-config type is not one the agent's backend accepts."""


class InvalidImageName(DeploymentError):
    """A string is not an image reference (``agent_core.images``); the run fails naming it."""


class APIError(AgentError):
    """The orchestration API answered with an error (or not at all).

    ``status`` is the HTTP status (0 when no answer came), ``error`` the server's short error
    and ``detail`` its longer explanation, often naming the offending field.
    """

    status: int = 0

    def __init__(self, error: str, detail: Any = None, status: int | None = None) -> None:
        self.error = error
        self.detail = detail
        if status is not None:
            self.status = status
        super().__init__(self._render())

    def _render(self) -> str:
        if self.detail in (None, "", {}):
            return self.error
        if isinstance(self.detail, dict):
            return f"{self.error} ({describe_problems(self.detail)})"
        return f"{self.error}: {self.detail}"


UNKNOWN_FIELD = "Unknown field."


def describe_problems(problems: dict[str, Any], known: Iterable[str] = ()) -> str:
    """``{"field": ["msg", ...]}`` (marshmallow's or the API's detail) as one readable line.

    With ``known`` (the names a schema takes), an unknown name says which one was likely meant.
    """
    names = sorted(known)
    return "; ".join(
        f"{key}: {_unknown(str(key), names) if names and value == [UNKNOWN_FIELD] else _flatten(value)}"
        for key, value in problems.items()
    )


def _unknown(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close:
        close = [k for k in known if name in k or k in name][:1]
    if close:
        return f"unknown name; did you mean {close[0]!r}?"
    return f"unknown name; the names taken are {', '.join(known)}"


def schema_names(schema: Any) -> list[str]:
    """The names a marshmallow schema loads (each field's ``data_key`` where it has one)."""
    return [field.data_key or name for name, field in schema.fields.items() if not field.dump_only]


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_flatten(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in value.items())
    return str(value)


class APIUnavailable(APIError):
    """The API could not be reached (connection refused, timeout, 5xx after retries)."""


class BadAPIAnswer(APIUnavailable):
    """The API (or something in front of it) answered 2xx with something other than the JSON the call expects.

    An HTML page from a proxy, a body that is not an object, a missing top-level key. Being an
    :class:`APIUnavailable`, every loop backs off on it as on an outage.
    """


class StorageUnavailable(APIUnavailable):
    """The API's database cannot be used right now (unreachable, full, read-only): 503."""

    status = 503


class BadRequest(APIError):
    """The API refused the request as malformed (400) or unprocessable (422)."""

    status = 400


class IllegalTransition(BadRequest):
    """The requested state change is not allowed from the run's current state (422)."""

    status = 422


class AuthError(APIError):
    """Missing, unknown or revoked key (401), or a role that may not do this (403)."""

    status = 401


class NotFound(APIError):
    """The id or name does not exist for the caller's tenant (404)."""

    status = 404


class StateUpdateConflict(APIError):
    """ "State update failed": the version sent is stale, someone else changed the run (409).

    For an agent this means another agent claimed the run first; it is not an error.
    """

    status = 409


class PayloadTooLarge(BadRequest):
    """The request body is larger than the server accepts (413)."""

    status = 413


def error_for_status(status: int, error: str, detail: Any = None) -> APIError:
    """The typed error matching an HTTP status from the API."""
    if status == 409:
        return StateUpdateConflict(error, detail, status)
    if status == 422 and error == "Illegal transition":
        return IllegalTransition(error, detail, status)
    if status in (401, 403):
        return AuthError(error, detail, status)
    if status == 404:
        return NotFound(error, detail, status)
    if status == 413:
        return PayloadTooLarge(error, detail, status)
    if 400 <= status < 500:
        return BadRequest(error, detail, status)
    if status == 503 and error == "Storage unavailable":
        return StorageUnavailable(error, detail, status)
    return APIUnavailable(error, detail, status)
