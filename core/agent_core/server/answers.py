"""JSON Schemas of what the endpoints answer, for the OpenAPI document (``components.schemas``).

They describe the dicts the store builds (``Store._run_dict``, ``_flow_dict``, ``_agent_dict``
...); the schemathesis test checks every answer against them. Objects allow properties beyond
the listed ones, so that adding a field to an answer stays backwards compatible.
"""

from __future__ import annotations

from typing import Any

from agent_core.states import State

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
TIME_OR_NULL: dict[str, Any] = {"type": ["string", "null"], "format": "date-time"}
STRING_OR_NULL: dict[str, Any] = {"type": ["string", "null"]}
LABELS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
    }


def items_of(item: dict[str, Any], *, cursor: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"items": [...]}``, with ``next_cursor`` for pages."""
    properties: dict[str, Any] = {"items": {"type": "array", "items": item}}
    if cursor is not None:
        properties["next_cursor"] = cursor
    return obj(properties)


SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object",
        "properties": {"error": {"type": "string"}, "detail": {}},
        "required": ["error", "detail"],
    },
    "Hello": obj(
        {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "api_version": {"type": "integer"},
            "features": {"type": "array", "items": {"type": "string"}},
            "max_wait_seconds": {"type": "number"},
            "agent_lease_seconds": {"type": "number"},
        }
    ),
    "Auth": obj(
        {
            "tenant_id": {"type": "string"},
            "tenant": {"type": "string"},
            "role": {"enum": ["runner", "user", "admin"]},
            "key_id": STRING_OR_NULL,
        }
    ),
    "Flow": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "version": {"type": "integer"},
            "command": {"type": "string"},
            "description": {"type": "string"},
            "labels": LABELS,
            "run_config": {"type": ["object", "null"]},
            "created": TIME,
            "updated": TIME,
            "changed": {"type": "boolean", "description": "POST /api/flows only: whether anything was written"},
        },
        optional=("changed",),
    ),
    "State": obj(
        {
            "type": {"enum": [s.value for s in State]},
            "message": {"type": "string"},
            "timestamp": TIME,
        }
    ),
    "FlowRun": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "flow_id": {"type": "string"},
            "flow": obj(
                {
                    "id": {"type": "string"},
                    "name": {"type": "string"},
                    "version": {"type": "integer"},
                    "command": {"type": "string"},
                }
            ),
            "parameters": {"type": "object"},
            "labels": LABELS,
            "run_config": {"type": ["object", "null"]},
            "scheduled_start_time": TIME,
            "state": ref("State"),
            "version": {"type": "integer"},
            "attempt": {"type": "integer"},
            "max_retries": {"type": "integer"},
            "retry_delay_seconds": {"type": "number"},
            "agent_id": STRING_OR_NULL,
            "deployment": {"type": ["object", "null"]},
            "idempotency_key": STRING_OR_NULL,
            "created": TIME,
            "start_time": TIME_OR_NULL,
            "end_time": TIME_OR_NULL,
        }
    ),
    "StateEntry": obj(
        {
            "type": {"enum": [s.value for s in State]},
            "message": {"type": "string"},
            "version": {"type": "integer"},
            "attempt": {"type": "integer"},
            "agent_id": STRING_OR_NULL,
            "timestamp": TIME,
        }
    ),
    "LogEntry": obj(
        {
            "timestamp": TIME,
            "level": {"type": "string"},
            "name": {"type": "string"},
            "message": {"type": "string"},
        }
    ),
    "Agent": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "backend": {"type": "string"},
            "labels": LABELS,
            "agent_config_id": STRING_OR_NULL,
            "created": TIME,
            "last_heartbeat": TIME,
            "heartbeat_period": {"type": ["number", "null"]},
            "lease_until": TIME_OR_NULL,
            "left": TIME_OR_NULL,
            "alive": {"type": "boolean"},
            "previous_heartbeat": {
                **TIME_OR_NULL,
                "description": "POST /api/agents only, when the name was registered and did not leave",
            },
        },
        optional=("previous_heartbeat",),
    ),
    "AgentLeft": {
        "allOf": [
            ref("Agent"),
            obj({"handed_back": {"type": "array", "items": {"type": "string"}}}),
        ]
    },
    "Heartbeat": obj(
        {
            "cancelling": {"type": "array", "items": ref("FlowRun")},
            "lease_expired": {"type": "boolean"},
        }
    ),
    "AgentConfig": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "settings": {"type": "object"},
            "created": TIME,
        }
    ),
    "Key": obj(
        {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "role": {"enum": ["runner", "user", "admin"]},
            "prefix": {"type": "string"},
            "created": TIME,
            "revoked": TIME_OR_NULL,
            "key": {"type": "string", "description": "POST /api/keys only: the secret, shown this once"},
        },
        optional=("key",),
    ),
    "LogsWritten": obj({"written": {"type": "integer"}}),
    "FlowPage": items_of(ref("Flow"), cursor=STRING_OR_NULL),
    "FlowRunPage": items_of(ref("FlowRun"), cursor=STRING_OR_NULL),
    "LogPage": items_of(ref("LogEntry"), cursor={"type": "string"}),
    "FlowRuns": items_of(ref("FlowRun")),
    "StateEntries": items_of(ref("StateEntry")),
    "Agents": items_of(ref("Agent")),
    "Keys": items_of(ref("Key")),
}
