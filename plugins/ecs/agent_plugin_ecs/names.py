"""How the backend names and tags what it creates on AWS, so that it can find it again.

- A task carries ``startedBy`` = the agent (``list_tasks`` filters on it) and tags with the run
  id, the attempt, the agent and the flow; its ``clientToken`` is the run id and attempt, so
  that a repeated launch of the same attempt returns the first task instead of a second one.
- A task definition carries a tag with the hash of its content (``agent.definition_hash``).
"""

from __future__ import annotations

import hashlib
import re

BACKEND = "ecs"

TAG_BACKEND = "agent.backend"
TAG_RUN = "agent.flow_run_id"
TAG_ATTEMPT = "agent.attempt"
TAG_AGENT = "agent.agent_name"
TAG_FLOW = "agent.flow_name"
TAG_HASH = "agent.definition_hash"
OWN_TAGS = frozenset({TAG_BACKEND, TAG_RUN, TAG_ATTEMPT, TAG_AGENT, TAG_FLOW, TAG_HASH})

MAX_TAG_VALUE = 256
MAX_STARTED_BY = 128
MAX_CLIENT_TOKEN = 64
MAX_FAMILY = 255

_NOT_STARTED_BY = re.compile(r"[^A-Za-z0-9_/-]")
_NOT_FAMILY = re.compile(r"[^A-Za-z0-9_-]")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def started_by(agent_name: str) -> str:
    """``agent/<name>``: up to 128 letters, digits, ``-``, ``/`` and ``_``, as ECS allows.

    A name with other characters, or too long, gets a short hash of the full name appended so
    that two agents never share the value by accident.
    """
    clean = _NOT_STARTED_BY.sub("_", agent_name)
    value = f"agent/{clean}"
    if clean == agent_name and len(value) <= MAX_STARTED_BY:
        return value
    suffix = f"-{_digest(agent_name, 10)}"
    return value[: MAX_STARTED_BY - len(suffix)] + suffix


def client_token(run_id: str, attempt: int) -> str:
    """The idempotency token of a run attempt's ``run_task`` (at most 64 printable characters)."""
    token = f"{run_id}-{attempt}"
    if len(token) <= MAX_CLIENT_TOKEN and all(33 <= ord(c) <= 126 for c in token):
        return token
    return _digest(token, MAX_CLIENT_TOKEN)


def family_for(flow_name: str) -> str:
    """The default task-definition family of a flow: ``agent-<flow name>`` in ECS's alphabet."""
    clean = _NOT_FAMILY.sub("-", flow_name).strip("-") or "flow"
    family = f"agent-{clean}"
    if len(family) <= MAX_FAMILY and clean == flow_name:
        return family
    suffix = f"-{_digest(flow_name, 8)}"
    return family[: MAX_FAMILY - len(suffix)] + suffix


def tag_value(text: str) -> str:
    return text[:MAX_TAG_VALUE]


def as_tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": tag_value(value)} for key, value in tags.items()]


def tag_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {item["key"]: item.get("value", "") for item in tags or [] if "key" in item}


def task_id(task_arn: str) -> str:
    return task_arn.rsplit("/", 1)[-1]
