"""schemathesis against ``/api/openapi.json`` of a real server, on SQLite and on PostgreSQL:
requests generated from the document, every answer checked against it (status code, content
type, body schema, no 5xx).

Bounded: a few examples per operation, so that the whole run takes tens of seconds.
"""

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from agent_core.server.endpoints import ENDPOINTS
from agent_core.server.openapi import openapi_document
from agent_core.testing.servers import APIServer

# Examples per operation: requests that fit the document, and requests that break it (which
# must be refused with a 4xx).
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 6}
# Listed from the generated document at collection time; each test loads the served one.
DOCUMENT = openapi_document(ENDPOINTS)
OPERATIONS = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item)
CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in EXAMPLES
    # Nothing to break in a request whose only input is a path id (any string is one).
    if mode == GenerationMode.POSITIVE
    or "requestBody" in DOCUMENT["paths"][path][method.lower()]
    or any(p["in"] != "path" for p in DOCUMENT["paths"][path][method.lower()].get("parameters", []))
]


@pytest.fixture(scope="module")
def served(module_db_url):
    with APIServer(module_db_url) as server:
        client = server.client()
        flow = client.register_flow("f", "echo f")
        client.create_flow_run(flow_id=flow["id"])
        server.agent_id = client.register_agent(name="schemathesis", backend="local", labels=[])["id"]
        yield server


@pytest.fixture(scope="module")
def served_schema(served):
    schema = schemathesis.openapi.from_url(f"{served.url}/api/openapi.json")
    # The API refuses NUL characters in every string (docs/api.md); the document's string
    # fields say so with a pattern, free-form objects (parameters, settings) only in words.
    schema.config.generation.update(allow_x00=False)
    return schema


def bounded(case):
    # A cursor is opaque: only one the server issued is valid, which no generator can know.
    if case.query:
        case.query.pop("cursor", None)
    # Long polls would make the run minutes long; a short wait takes the same path.
    if isinstance(case.body, dict) and isinstance(case.body.get("wait_seconds"), int | float):
        case.body["wait_seconds"] = min(case.body["wait_seconds"], 0.05)
    return case


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode.value}" for m, p, mode in CASES])
def test_every_answer_agrees_with_the_document(served, served_schema, method, path, mode):
    operation = served_schema[path][method]
    session = requests.Session()
    if mode == GenerationMode.POSITIVE:
        # A claim needs the id of a registered agent: that part of "valid" no document can say.
        headers = {"X-Agent-Id": served.agent_id} if path == "/api/queue" else None
        strategy = operation.as_strategy(mode, headers=headers).map(bounded)
    else:
        strategy = operation.as_strategy(mode)

    @given(case=strategy)
    @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def check(case):
        case.call_and_validate(base_url=served.url, session=session)

    check()
