"""The OpenAPI document: valid, complete, and describing what the server really accepts.

Requests here are built from the document served at /api/openapi.json, not from the server's
own schemas, so a drift between the two shows up as a failing case.
"""

import uuid

import jsonschema
import pytest
import requests
from openapi_spec_validator import validate

from agent_core.server.endpoints import ENDPOINTS
from agent_core.server.openapi import openapi_document
from agent_core.testing.servers import APIServer

BODY_ENDPOINTS = [(e.method, e.path) for e in ENDPOINTS if e.body is not None]
QUERY_ENDPOINTS = [(e.method, e.path) for e in ENDPOINTS if e.query is not None]
ALL_ENDPOINTS = [(e.method, e.path) for e in ENDPOINTS]


@pytest.fixture(scope="module")
def server(module_db_url):
    with APIServer(module_db_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def document(server):
    response = requests.get(f"{server.url}/api/openapi.json", timeout=10)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def objects(server):
    """Fresh objects for path ids and id-valued properties, so each request can succeed."""
    client = server.client()
    flow = client.register_flow(f"doc-{uuid.uuid4().hex[:8]}", "echo doc")
    run = client.create_flow_run(flow_id=flow["id"])
    return {
        "flow": flow["id"],
        "run": run["id"],
        "agent": client.register_agent(name="doc", backend="local", labels=[])["id"],
        "config": client.create_agent_config("doc", {})["id"],
        "key": client.create_key("runner", "doc")["id"],
    }


def concrete_path(path, objects):
    owner = {
        "/api/flows/{id}": "flow",
        "/api/agents/{id}/heartbeat": "agent",
        "/api/agents/{id}/leave": "agent",
        "/api/agent-configs/{id}": "config",
        "/api/keys/{id}": "key",
    }.get(path, "run")
    return path.replace("{id}", objects[owner])


ID_PROPERTIES = {"flow_run_id": "run", "flow_id": "flow", "agent_config_id": "config"}


def minimal(schema, objects, name=None):
    """The smallest value the document allows for ``schema``: required properties only."""
    if name in ID_PROPERTIES:
        return objects[ID_PROPERTIES[name]]
    if "anyOf" in schema and schema.get("type") == "object":
        # "one of these sets of properties is required": take the first set.
        first = schema["anyOf"][0]
        merged = {k: v for k, v in schema.items() if k != "anyOf"}
        merged["required"] = [*schema.get("required", []), *first.get("required", [])]
        return minimal(merged, objects, name)
    if "anyOf" in schema:
        return minimal(next(s for s in schema["anyOf"] if s.get("type") != "null"), objects, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        return {p: minimal(props.get(p, {"type": "string"}), objects, p) for p in schema.get("required", [])}
    if kind == "array":
        return [minimal(schema["items"], objects) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return (
            "2030-01-01T00:00:00Z" if schema.get("format") == "date-time" else "x" * max(1, schema.get("minLength", 1))
        )
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def body_schema(document, method, path):
    return document["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]


def send(server, method, path, body=None, params=None):
    return requests.request(method, f"{server.url}{path}", json=body, params=params, timeout=10)


def test_the_document_is_a_valid_openapi_3_document(document):
    validate(document)
    assert document["openapi"].startswith("3.")


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS, ids=[f"{m} {p}" for m, p in ALL_ENDPOINTS])
def test_every_declared_endpoint_is_documented(document, method, path):
    assert method.lower() in document["paths"].get(path, {})


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS, ids=[f"{m} {p}" for m, p in ALL_ENDPOINTS])
def test_every_path_parameter_is_documented(document, method, path):
    operation = document["paths"][path][method.lower()]
    documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}

    assert documented == ({"id"} if "{id}" in path else set())


def test_the_document_documents_itself(document):
    assert "get" in document["paths"]["/api/openapi.json"]


@pytest.mark.parametrize(
    ("method", "path"),
    BODY_ENDPOINTS,
    ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS],
)
def test_a_body_of_the_documented_required_properties_is_accepted(server, document, objects, method, path):
    schema = body_schema(document, method, path)
    body = minimal(schema, objects)
    assert jsonschema.Draft202012Validator(schema).is_valid(body)

    response = send(server, method, concrete_path(path, objects), body)

    assert response.status_code != 400, response.text
    assert response.status_code < 500, response.text


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS, ids=[f"{m} {p}" for m, p in BODY_ENDPOINTS])
def test_a_property_the_document_does_not_list_is_refused(server, document, objects, method, path):
    schema = body_schema(document, method, path)
    assert schema["additionalProperties"] is False
    body = {**minimal(schema, objects), "flow_name": "x", "undocumented": 1}
    if "flow_name" not in schema["properties"]:
        del body["flow_name"]

    response = send(server, method, concrete_path(path, objects), body)

    assert response.status_code == 400
    assert "undocumented" in response.text


# The document as generated, to enumerate its required properties at collection time; the
# tests themselves read the one the server serves.
_DOC = openapi_document(ENDPOINTS)
REQUIRED = [
    (method, path, name)
    for method, path in BODY_ENDPOINTS
    for name in _DOC["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"].get(
        "required", []
    )
]


@pytest.mark.parametrize(("method", "path", "name"), REQUIRED, ids=[f"{m} {p} {n}" for m, p, n in REQUIRED])
def test_a_documented_required_property_is_really_required(server, document, objects, method, path, name):
    schema = body_schema(document, method, path)
    assert name in schema["required"]
    body = minimal(schema, objects)
    del body[name]

    response = send(server, method, concrete_path(path, objects), body)

    assert response.status_code == 400
    assert name in response.text


@pytest.mark.parametrize(("method", "path"), QUERY_ENDPOINTS, ids=[f"{m} {p}" for m, p in QUERY_ENDPOINTS])
def test_every_documented_query_parameter_is_accepted(server, document, objects, method, path):
    parameters = [p for p in document["paths"][path]["get"]["parameters"] if p["in"] == "query"]
    values = {"limit": "5", "state": "Scheduled", "flow": objects["flow"], "agent_id": objects["agent"]}
    params = {p["name"]: values.get(p["name"], "x") for p in parameters if p["name"] != "cursor"}

    response = send(server, method, concrete_path(path, objects), params=params)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("method", "path"), QUERY_ENDPOINTS, ids=[f"{m} {p}" for m, p in QUERY_ENDPOINTS])
def test_a_query_parameter_the_document_does_not_list_is_refused(server, objects, method, path):
    response = send(server, method, concrete_path(path, objects), params={"undocumented": "1"})

    assert response.status_code == 400
    assert "undocumented" in response.text


# Requests that succeed, to compare the answered status with the documented one.
GOOD_BODIES = {
    "/api/flows": lambda o: {"name": f"good-{uuid.uuid4().hex[:8]}", "command": "x"},
    "/api/flow-runs": lambda o: {"flow_id": o["flow"]},
    "/api/flow-runs/{id}/state": lambda o: {"version": 1, "state": {"type": "Submitted"}},
    "/api/flow-runs/{id}/deployment": lambda o: {"deployment": {"backend": "local", "platform_id": "1"}},
    "/api/flow-runs/{id}/cancel": lambda o: {},
    "/api/flow-runs/prune": lambda o: {"older_than_seconds": 0, "dry_run": True},
    "/api/logs": lambda o: {"logs": [{"flow_run_id": o["run"], "message": "m"}]},
    "/api/queue": lambda o: {"labels": []},
    "/api/agents": lambda o: {"name": "a"},
    "/api/agents/{id}/heartbeat": lambda o: {},
    "/api/agents/{id}/leave": lambda o: {},
    "/api/agent-configs": lambda o: {"name": "c", "settings": {}},
    "/api/keys": lambda o: {"role": "user"},
}


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS, ids=[f"{m} {p}" for m, p in ALL_ENDPOINTS])
def test_the_documented_success_status_is_the_one_answered(server, document, objects, method, path):
    body = GOOD_BODIES[path](objects) if method == "POST" else None
    documented = {code for code in document["paths"][path][method.lower()]["responses"] if code.isdigit()}

    response = send(server, method, concrete_path(path, objects), body)

    assert str(response.status_code) in documented, response.text


def validator(document, schema):
    """A validator of ``schema`` whose ``#/components/...`` references resolve in the document."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def test_errors_have_the_documented_shape(server, document):
    error_schema = document["paths"]["/api/flows"]["post"]["responses"]["4XX"]["content"]["application/json"]
    response = send(server, "POST", "/api/flows", {"name": 3})

    validator(document, error_schema["schema"]).validate(response.json())


@pytest.mark.parametrize(("method", "path"), ALL_ENDPOINTS, ids=[f"{m} {p}" for m, p in ALL_ENDPOINTS])
def test_a_successful_answer_matches_its_documented_schema(server, document, objects, method, path):
    body = GOOD_BODIES[path](objects) if method == "POST" else None
    response = send(server, method, concrete_path(path, objects), body)
    schema = document["paths"][path][method.lower()]["responses"][str(response.status_code)]

    validator(document, schema["content"]["application/json"]["schema"]).validate(response.json())


@pytest.mark.parametrize(
    ("run_config", "valid"),
    [
        ({"type": "universal", "env": {"A": "1"}}, True),
        ({"type": "universal", "env": {"A": 1}}, False),
        ({"type": "universal", "image": "x"}, False),
        ({"type": "docker", "image": "x", "anything": {"goes": 1}}, True),
        ({"env": {}}, False),
        ({"type": "universal", "env": {"A": None}, "timeout_seconds": 30, "ship_output": False}, True),
        ({"type": "universal", "timeout_seconds": 0}, False),
        ({"type": "universal", "ship_output": "no"}, False),
    ],
    ids=[
        "universal-ok",
        "universal-env-not-string",
        "universal-unknown-key",
        "backend-type",
        "no-type",
        "universal-core-keys-and-null-env",
        "universal-timeout-not-positive",
        "universal-ship-output-not-boolean",
    ],
)
def test_the_document_and_the_server_agree_on_run_configs(server, document, run_config, valid):
    body = {"name": f"rc-{uuid.uuid4().hex[:8]}", "command": "x", "run_config": run_config}
    assert jsonschema.Draft202012Validator(body_schema(document, "POST", "/api/flows")).is_valid(body) is valid

    response = send(server, "POST", "/api/flows", body)

    assert (response.status_code < 400) is valid, response.text
