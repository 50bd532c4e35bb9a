"""The OpenAPI 3 document, generated from the endpoint declarations and their schemas."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import Schema, fields, validate

from agent_core import __version__
from agent_core.server.answers import SCHEMAS
from agent_core.server.routing import AGENT_ID_HEADER, MAX_AGENT_ID, Endpoint
from agent_core.server.schemas import RunConfigField, UniversalRunConfigSchema, UTCDateTime

ERROR = {"$ref": "#/components/schemas/Error"}
JSON_ERROR = {"content": {"application/json": {"schema": ERROR}}}


def field_schema(field: fields.Field) -> dict[str, Any]:
    out: dict[str, Any]
    if isinstance(field, fields.Nested):
        nested = field.nested
        schema = nested() if isinstance(nested, type) else nested
        assert isinstance(schema, Schema)
        out = schema_to_json(schema)
    elif isinstance(field, fields.List):
        out = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, RunConfigField):
        # Any backend's type passes through; a universal one is checked here, as the server does.
        universal = schema_to_json(UniversalRunConfigSchema())
        universal["properties"]["type"] = {"const": "universal"}
        out = {
            "type": "object",
            "properties": {"type": {"type": "string", "minLength": 1}},
            "required": ["type"],
            "additionalProperties": True,
            "if": {"properties": {"type": {"const": "universal"}}},
            "then": universal,
        }
    elif isinstance(field, fields.Dict):
        out = {"type": "object"}
        if field.value_field is not None:
            out["additionalProperties"] = field_schema(field.value_field)
    elif isinstance(field, UTCDateTime | fields.DateTime):
        out = {"type": "string", "format": "date-time"}
    elif isinstance(field, fields.Integer):
        out = {"type": "integer"}
    elif isinstance(field, fields.Number):
        out = {"type": "number"}
    elif isinstance(field, fields.Boolean):
        out = {"type": "boolean"}
    elif isinstance(field, fields.Constant):
        out = {"const": field.constant}
    elif isinstance(field, fields.String):
        out = {"type": "string"}
    else:
        out = {}
    for validator in field.validators:
        if isinstance(validator, validate.Length):
            low, high = ("minItems", "maxItems") if out.get("type") == "array" else ("minLength", "maxLength")
            if validator.min is not None:
                out[low] = validator.min
            if validator.max is not None:
                out[high] = validator.max
        elif isinstance(validator, validate.Range):
            if validator.min is not None:
                out["minimum" if validator.min_inclusive else "exclusiveMinimum"] = validator.min
            if validator.max is not None:
                out["maximum" if validator.max_inclusive else "exclusiveMaximum"] = validator.max
        elif isinstance(validator, validate.OneOf):
            out["enum"] = list(validator.choices)
    if field.allow_none:
        out = {"anyOf": [out, {"type": "null"}]} if out else out
    for keyword in ("maximum", "pattern"):
        if keyword in field.metadata and keyword not in out:
            out[keyword] = field.metadata[keyword]
    description = field.metadata.get("description")
    if description:
        out["description"] = description
    return out


def schema_to_json(schema: Schema) -> dict[str, Any]:
    properties = {name: field_schema(f) for name, f in schema.fields.items()}
    required = [name for name, f in schema.fields.items() if f.required]
    out: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        out["required"] = required
    # Rules a schema checks across fields (e.g. "flow_id or flow_name") it states itself.
    out.update(getattr(schema, "openapi_extra", {}))
    return out


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    answer = {"$ref": f"#/components/schemas/{endpoint.response}"} if endpoint.response else {"type": "object"}
    ok = {"description": "OK", "content": {"application/json": {"schema": answer}}}
    op: dict[str, Any] = {
        "summary": endpoint.summary,
        "operationId": f"{endpoint.method.lower()}_{re.sub(r'[^a-z0-9]+', '_', endpoint.path.lower()).strip('_')}",
        "tags": list(endpoint.tags),
        "responses": {
            **{str(status): ok for status in (endpoint.status, *endpoint.also)},
            "4XX": {"description": "Bad request (the detail names the problem)", **JSON_ERROR},
            "503": {"description": "Storage unavailable (the detail names the database)", **JSON_ERROR},
        },
    }
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    if endpoint.query is not None:
        for name, f in endpoint.query().fields.items():
            params.append({"name": name, "in": "query", "required": f.required, "schema": field_schema(f)})
    if endpoint.agent_header:
        params.append(
            {
                "name": AGENT_ID_HEADER,
                "in": "header",
                "required": False,
                "description": f"The caller's agent id (POST /api/agents): {endpoint.agent_header}",
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_AGENT_ID, "pattern": "^[ -~]*$"},
            }
        )
    if params:
        op["parameters"] = params
    if endpoint.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_to_json(endpoint.body())}},
        }
    if endpoint.roles is None:
        op["security"] = []
    else:
        op["description"] = f"Roles: {', '.join(sorted(endpoint.roles))}."
    return op


def openapi_document(endpoints: list[Endpoint], *, auth_required: bool = True) -> dict[str, Any]:
    """The document; a server without auth (loopback only) declares the bearer key optional."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    paths["/api/openapi.json"] = {
        "get": {
            "summary": "This document",
            "operationId": "get_openapi",
            "security": [],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}
            },
        }
    }
    paths["/metrics"] = {
        "get": {
            "summary": "Prometheus metrics of this server",
            "description": "Open on a server without auth; with auth, send the metrics_token or an admin key.",
            "operationId": "get_metrics",
            "tags": ["meta"],
            "responses": {
                "200": {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}},
                "4XX": {"description": "Missing or refused key", **JSON_ERROR},
            },
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "agent orchestration API", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": SCHEMAS,
        },
        "security": [{"bearer": []}] if auth_required else [{"bearer": []}, {}],
        "paths": paths,
    }
