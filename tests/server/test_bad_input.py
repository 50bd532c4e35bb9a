"""Bad input: every bad request is a 4xx JSON ``{"error", "detail"}`` naming the field, never a 500.

Tables of hand-picked cases first (malformed JSON, wrong types, unknown and missing fields,
unknown ids, oversized bodies, bad cursors and query parameters, wrong content types), then
hypothesis sending random JSON to every POST endpoint and random query strings to every GET.
"""

import base64
import json
import uuid
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_core.server.endpoints import ENDPOINTS
from agent_core.testing.servers import APIServer
from tests.server.helpers import fill

MiB = 1024 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(module_db_url):
    with APIServer(module_db_url) as srv:
        yield srv


@pytest.fixture(scope="module")
def ids(server):
    """Objects the requests can name: a flow ``f``, a run of it, an agent."""
    client = server.client()
    flow = client.register_flow("f", "echo f")
    run = client.create_flow_run(flow_id=flow["id"])
    agent = client.register_agent(name="a", backend="local", labels=[])
    return {"flow": flow["id"], "run": run["id"], "agent": agent["id"]}


def send(server, method, path, *, body=None, raw=None, params=None, headers=None):
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    return requests.request(
        method, f"{server.url}{path}", data=data, params=params, headers={**JSON, **(headers or {})}, timeout=30
    )


def assert_error(response, status, field=None):
    """A JSON error with ``status`` whose detail mentions ``field``."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "detail"}
    assert isinstance(body["error"], str)
    assert body["error"]
    if field is not None:
        assert field in json.dumps(body["detail"]), body


# A well-formed body for every POST endpoint; the tables below break one thing at a time.
VALID = {
    "/api/flows": {"name": "f", "command": "echo f"},
    "/api/flow-runs": {"flow_name": "f"},
    "/api/flow-runs/{run}/state": {"version": 1, "state": {"type": "Submitted", "message": "claim"}},
    "/api/flow-runs/{run}/deployment": {"deployment": {"backend": "local", "platform_id": "1"}},
    "/api/flow-runs/{run}/cancel": {"message": "stop"},
    "/api/flow-runs/prune": {"older_than_seconds": 86400, "dry_run": True},
    "/api/logs": {"logs": [{"flow_run_id": "{run}", "message": "hello"}]},
    "/api/queue": {"labels": [], "limit": 10},
    "/api/agents": {"name": "agent", "backend": "local", "labels": []},
    "/api/agents/{agent}/heartbeat": {},
    "/api/agent-configs": {"name": "config", "settings": {}},
    "/api/keys": {"role": "runner"},
}
POST_PATHS = list(VALID)


def test_every_post_endpoint_has_a_valid_body_here():
    declared = {e.path for e in ENDPOINTS if e.method == "POST"}
    assert {p.replace("{run}", "{id}").replace("{agent}", "{id}") for p in POST_PATHS} == declared


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("raw", ['{"name": ', "{'single': 'quotes'}", "\xff\xfe"])
def test_malformed_json_is_a_400(server, ids, path, raw):
    response = send(server, "POST", fill(path, ids), raw=raw.encode("latin-1"))

    assert_error(response, 400)
    assert response.json()["error"] == "Malformed JSON"


@pytest.mark.parametrize("path", POST_PATHS)
@pytest.mark.parametrize("body", [[1, 2], "text", None], ids=["list", "string", "null"])
def test_a_body_that_is_not_an_object_is_a_400_naming_the_body(server, ids, path, body):
    response = send(server, "POST", fill(path, ids), raw=json.dumps(body))

    assert_error(response, 400, "body")


@pytest.mark.parametrize("path", POST_PATHS)
def test_an_unknown_field_is_a_400_naming_it(server, ids, path):
    body = {**VALID[path], "surprise": 1}

    assert_error(send(server, "POST", fill(path, ids), body=fill(body, ids)), 400, "surprise")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/flow-runs/{run}/state", {"version": 1, "state": {"type": "Running", "colour": "red"}}, "colour"),
        ("/api/flow-runs/{run}/deployment", {"deployment": {"backend": "x", "platform_id": "1", "pid": 3}}, "pid"),
        ("/api/logs", {"logs": [{"flow_run_id": "{run}", "message": "m", "lineno": 3}]}, "lineno"),
        ("/api/flows", {"name": "f", "command": "x", "run_config": {"type": "universal", "image": "x"}}, "image"),
    ],
)
def test_an_unknown_nested_field_is_a_400_naming_it(server, ids, path, body, field):
    assert_error(send(server, "POST", fill(path, ids), body=fill(body, ids)), 400, field)


MISSING = [
    ("/api/flows", {"command": "x"}, "name"),
    ("/api/flows", {"name": "f"}, "command"),
    ("/api/flow-runs", {"parameters": {}}, "flow_id"),
    ("/api/flow-runs/{run}/state", {"state": {"type": "Running"}}, "version"),
    ("/api/flow-runs/{run}/state", {"version": 1}, "state"),
    ("/api/flow-runs/{run}/state", {"version": 1, "state": {"message": "m"}}, "type"),
    ("/api/flow-runs/{run}/deployment", {}, "deployment"),
    ("/api/flow-runs/{run}/deployment", {"deployment": {"platform_id": "1"}}, "backend"),
    ("/api/logs", {}, "logs"),
    ("/api/logs", {"logs": [{"flow_run_id": "{run}"}]}, "message"),
    ("/api/logs", {"logs": [{"message": "m"}]}, "flow_run_id"),
    ("/api/agent-configs", {"name": "c"}, "settings"),
    ("/api/agent-configs", {"settings": {}}, "name"),
    ("/api/keys", {}, "role"),
]


@pytest.mark.parametrize(("path", "body", "field"), MISSING, ids=[f"{p} without {f}" for p, _, f in MISSING])
def test_a_missing_field_is_a_400_naming_it(server, ids, path, body, field):
    assert_error(send(server, "POST", fill(path, ids), body=fill(body, ids)), 400, field)


WRONG_TYPES = [
    ("/api/flows", {"name": 1, "command": "x"}, "name"),
    ("/api/flows", {"name": "f", "command": ["echo", "x"]}, "command"),
    ("/api/flows", {"name": "f", "command": "x", "labels": "gpu"}, "labels"),
    ("/api/flows", {"name": "f", "command": "x", "labels": [1]}, "labels"),
    ("/api/flows", {"name": "f", "command": "x", "labels": [""]}, "labels"),
    ("/api/flows", {"name": "", "command": "x"}, "name"),
    ("/api/flows", {"name": "f", "command": "x", "run_config": "docker"}, "run_config"),
    ("/api/flows", {"name": "f", "command": "x", "run_config": {"type": 3}}, "run_config"),
    ("/api/flows", {"name": "f", "command": "x", "run_config": {"type": "universal", "env": {"A": 1}}}, "env"),
    ("/api/flow-runs", {"flow_name": "f", "parameters": [1]}, "parameters"),
    ("/api/flow-runs", {"flow_name": "f", "labels": "gpu"}, "labels"),
    ("/api/flow-runs", {"flow_name": "f", "max_retries": "3"}, "max_retries"),
    ("/api/flow-runs", {"flow_name": "f", "max_retries": True}, "max_retries"),
    ("/api/flow-runs", {"flow_name": "f", "max_retries": -1}, "max_retries"),
    ("/api/flow-runs", {"flow_name": "f", "max_retries": 101}, "max_retries"),
    ("/api/flow-runs", {"flow_name": "f", "retry_delay_seconds": "10s"}, "retry_delay_seconds"),
    ("/api/flow-runs", {"flow_name": "f", "retry_delay_seconds": -5}, "retry_delay_seconds"),
    ("/api/flow-runs", {"flow_name": "f", "scheduled_start_time": 1700000000}, "scheduled_start_time"),
    ("/api/flow-runs", {"flow_name": "f", "scheduled_start_time": "next tuesday"}, "scheduled_start_time"),
    ("/api/flow-runs", {"flow_name": "f", "scheduled_start_time": "2030-02-30T00:00:00"}, "scheduled_start_time"),
    ("/api/flow-runs", {"flow_name": "f", "idempotency_key": 5}, "idempotency_key"),
    ("/api/flow-runs", {"flow_name": 7}, "flow_name"),
    ("/api/flow-runs/{run}/state", {"version": "1", "state": {"type": "Running"}}, "version"),
    ("/api/flow-runs/{run}/state", {"version": 0, "state": {"type": "Running"}}, "version"),
    ("/api/flow-runs/{run}/state", {"version": 1, "state": "Running"}, "state"),
    ("/api/flow-runs/{run}/state", {"version": 1, "state": {"type": "running"}}, "type"),
    ("/api/flow-runs/{run}/state", {"version": 1, "state": {"type": "Running", "message": 3}}, "message"),
    ("/api/flow-runs/{run}/deployment", {"deployment": {"backend": "x", "platform_id": 1}}, "platform_id"),
    ("/api/flow-runs/{run}/deployment", {"deployment": "pid 3"}, "deployment"),
    ("/api/flow-runs/{run}/cancel", {"message": 5}, "message"),
    ("/api/logs", {"logs": {"flow_run_id": "{run}", "message": "m"}}, "logs"),
    ("/api/logs", {"logs": [{"flow_run_id": "{run}", "message": 5}]}, "message"),
    ("/api/logs", {"logs": [{"flow_run_id": "{run}", "message": "m", "timestamp": "yesterday"}]}, "timestamp"),
    ("/api/logs", {"logs": [{"flow_run_id": "{run}", "message": "m"}] * 5001}, "logs"),
    ("/api/queue", {"labels": [], "limit": "10"}, "limit"),
    ("/api/queue", {"labels": [], "limit": 0}, "limit"),
    ("/api/queue", {"labels": [], "limit": 501}, "limit"),
    ("/api/queue", {"before": "soon"}, "before"),
    ("/api/queue", {"labels": "gpu"}, "labels"),
    ("/api/agents", {"name": "a", "labels": "gpu"}, "labels"),
    ("/api/agents", {"name": ["a"]}, "name"),
    ("/api/agent-configs", {"name": "c", "settings": []}, "settings"),
    ("/api/keys", {"role": "root"}, "role"),
]


@pytest.mark.parametrize(
    ("path", "body", "field"), WRONG_TYPES, ids=[f"{p} {f} {i}" for i, (p, _, f) in enumerate(WRONG_TYPES)]
)
def test_a_wrong_type_or_value_is_a_400_naming_the_field(server, ids, path, body, field):
    assert_error(send(server, "POST", fill(path, ids), body=fill(body, ids)), 400, field)


UNKNOWN_IDS = [
    ("GET", "/api/flows/{x}", None),
    ("GET", "/api/flow-runs/{x}", None),
    ("GET", "/api/flow-runs/{x}/states", None),
    ("GET", "/api/flow-runs/{x}/logs", None),
    ("POST", "/api/flow-runs/{x}/state", {"version": 1, "state": {"type": "Running"}}),
    ("POST", "/api/flow-runs/{x}/deployment", {"deployment": {"backend": "x", "platform_id": "1"}}),
    ("POST", "/api/flow-runs/{x}/cancel", {}),
    ("POST", "/api/flow-runs", {"flow_id": "{x}"}),
    ("POST", "/api/flow-runs", {"flow_name": "no-such-flow"}),
    ("POST", "/api/logs", {"logs": [{"flow_run_id": "{x}", "message": "m"}]}),
    ("POST", "/api/agents/{x}/heartbeat", {}),
    ("POST", "/api/agents", {"agent_config_id": "{x}"}),
    ("GET", "/api/agent-configs/{x}", None),
    ("DELETE", "/api/keys/{x}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), UNKNOWN_IDS, ids=[f"{m} {p} {b}" for m, p, b in UNKNOWN_IDS])
def test_an_unknown_id_is_a_404_naming_it(server, method, path, body):
    unknown = str(uuid.uuid4())

    response = send(server, method, fill(path, {"x": unknown}), body=fill(body, {"x": unknown}))

    assert_error(response, 404)
    assert unknown in response.text or "no-such-flow" in response.text


def test_a_body_over_2_mib_is_a_413(server):
    body = {"name": "big", "command": "x" * (2 * MiB)}

    assert_error(send(server, "POST", "/api/flows", body=body), 413)


def test_a_chunked_body_over_2_mib_is_a_413(server):
    chunks = (b"x" * 65536 for _ in range(40))  # no Content-Length: sent chunked

    assert_error(send(server, "POST", "/api/flows", raw=chunks), 413)


def test_a_body_just_under_the_limit_is_read_and_validated(server):
    body = {"name": "big", "command": "x", "description": "d" * (2 * MiB - 100)}

    assert_error(send(server, "POST", "/api/flows", body=body), 400, "description")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_by_content_type_is_a_415(server, content_type):
    response = send(server, "POST", "/api/flows", body=VALID["/api/flows"], headers={"Content-Type": content_type})

    assert_error(response, 415)
    assert content_type in response.json()["detail"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json"])
def test_json_content_types_with_parameters_or_suffixes_are_accepted(server, content_type):
    response = send(server, "POST", "/api/flows", body=VALID["/api/flows"], headers={"Content-Type": content_type})

    assert response.status_code == 200


def b64(value):
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


BAD_CURSORS = [
    ("/api/flows", "garbage!"),
    ("/api/flows", b64([1, 2])),
    ("/api/flows", b64({"after": "x"})),
    ("/api/flow-runs", "garbage!"),
    ("/api/flow-runs", b64(["x"])),
    ("/api/flow-runs", b64(["not a time", "x"])),
    ("/api/flow-runs/{run}/logs", "garbage!"),
    ("/api/flow-runs/{run}/logs", b64(["a"])),
    ("/api/flow-runs/{run}/logs", b64([1, 2])),
    ("/api/flow-runs/{run}/logs", "x" * 1001),
]


@pytest.mark.parametrize(("path", "cursor"), BAD_CURSORS, ids=[f"{p} {c[:20]}" for p, c in BAD_CURSORS])
def test_a_cursor_the_server_did_not_issue_is_a_400_naming_the_cursor(server, ids, path, cursor):
    assert_error(send(server, "GET", fill(path, ids), params={"cursor": cursor}), 400, "cursor")


@pytest.mark.parametrize("first", ["P1Y", "12:00"])
def test_a_run_cursor_holding_a_duration_or_time_is_a_400(server, first):
    assert_error(send(server, "GET", "/api/flow-runs", params={"cursor": b64([first, "x"])}), 400, "cursor")


BAD_QUERIES = [
    ("/api/flows", {"limit": "ten"}, "limit"),
    ("/api/flows", {"limit": "0"}, "limit"),
    ("/api/flows", {"limit": "501"}, "limit"),
    ("/api/flows", {"limit": ["1", "2"]}, "limit"),
    ("/api/flows", {"sort": "name"}, "sort"),
    ("/api/flow-runs", {"state": "Exploded"}, "state"),
    ("/api/flow-runs", {"state": "Running,Nope"}, "Nope"),
    ("/api/flow-runs", {"limit": "-1"}, "limit"),
    ("/api/flow-runs/{run}/logs", {"limit": "5001"}, "limit"),
    ("/api/flow-runs/{run}/logs", {"since": "1"}, "since"),
    ("/api/hello", {"verbose": "1"}, "verbose"),
    ("/api/agents", {"label": "x"}, "label"),
    ("/api/flow-runs/{run}", {"fields": "id"}, "fields"),
]


@pytest.mark.parametrize(("path", "params", "field"), BAD_QUERIES, ids=[f"{p} {q}" for p, q, _ in BAD_QUERIES])
def test_a_bad_query_parameter_is_a_400_naming_it(server, ids, path, params, field):
    assert_error(send(server, "GET", fill(path, ids), params=params), 400, field)


def test_an_unknown_path_is_a_json_404(server):
    assert_error(send(server, "GET", "/api/no-such-thing"), 404)


def test_a_method_the_path_does_not_take_is_a_json_405(server):
    assert_error(send(server, "DELETE", "/api/flows"), 405)


# --- known bugs: each should be a 4xx, the server answers otherwise ------------------------------
# Values that get stored and break later answers (a run holding a lone surrogate makes every
# run list a 500) are sent to a server of the test's own.


@pytest.fixture
def fresh(api_server, api):
    """A server of this test's own, with a flow ``f``."""
    api.register_flow("f", "echo f")
    return api_server


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_standard_json_constants_are_a_400(fresh, constant):
    raw = '{"flow_name": "f", "parameters": {"x": ' + constant + "}}"

    assert_error(send(fresh, "POST", "/api/flow-runs", raw=raw), 400)


def test_deeply_nested_json_is_a_400(server):
    raw = '{"flow_name": "f", "parameters": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"

    assert_error(send(server, "POST", "/api/flow-runs", raw=raw), 400)


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/flows", '{"name": "\\ud800", "command": "x"}'),
        ("/api/flow-runs", '{"flow_name": "f", "parameters": {"k": "\\ud800"}}'),
    ],
)
def test_a_lone_surrogate_in_a_string_is_a_400(fresh, path, raw):
    assert_error(send(fresh, "POST", path, raw=raw), 400)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/flow-runs", {"flow_name": "f", "scheduled_start_time": "0001-01-01T00:00:00+05:00"}, "scheduled"),
        ("/api/flow-runs", {"flow_name": "f", "scheduled_start_time": "9999-12-31T23:00:00-05:00"}, "scheduled"),
        ("/api/queue", {"before": "0001-01-01T00:00:00+05:00"}, "before"),
    ],
)
def test_a_time_out_of_range_in_utc_is_a_400(server, path, body, field):
    assert_error(send(server, "POST", path, body=body), 400, field)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/flow-runs", {"flow_name": "f", "max_retries": 1.5}, "max_retries"),
        ("/api/queue", {"labels": [], "limit": 2.5}, "limit"),
    ],
)
def test_a_fractional_number_for_an_integer_is_a_400(server, path, body, field):
    assert_error(send(server, "POST", path, body=body), 400, field)


NUL_CASES = [
    ("POST", "/api/flows", {"name": "a\u0000b", "command": "x"}, None),
    ("POST", "/api/flow-runs", {"flow_name": "f", "labels": ["a\u0000"]}, None),
    ("GET", "/api/flows/a%00b", None, None),
    ("GET", "/api/flow-runs", None, {"flow": "f\u0000"}),
]


@pytest.mark.parametrize(("method", "path", "body", "params"), NUL_CASES, ids=[f"{m} {p}" for m, p, _, _ in NUL_CASES])
def test_a_nul_character_in_a_string_is_never_a_500(server, method, path, body, params):
    response = send(server, method, path, body=body, params=params)

    assert response.status_code < 500, response.text


# --- property: random input never breaks the server ------------------------------------------

TEXT = st.text(max_size=12)
FIELD_NAMES = sorted(
    {name for e in ENDPOINTS if e.body for name in e.body().fields}
    | {"type", "message", "backend", "platform_id", "flow_run_id", "level", "env", "image"}
)
MEANINGFUL = st.sampled_from(
    ["f", "Submitted", "Running", "Failed", "universal", "docker", "INFO", "runner", "admin", "2030-01-01T00:00:00"]
)


def json_values(ids):
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | TEXT
        | MEANINGFUL
        | st.sampled_from(sorted(ids.values()))
    )
    keys = st.sampled_from(FIELD_NAMES) | TEXT
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
        max_leaves=12,
    )


def assert_not_a_server_error(response):
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code >= 400:
        assert set(body) == {"error", "detail"}, body
        assert isinstance(body["error"], str)


def locations(value, here=()):
    """Every place inside a JSON value: paths of dict keys and list indexes."""
    out = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return out
    for key, child in items:
        out.append((*here, key))
        out += locations(child, (*here, key))
    return out


def replaced(value, where, new):
    """``value`` with the item at ``where`` replaced by ``new`` (or removed when ``new`` is ``REMOVE``)."""
    if not where:
        return new
    head, rest = where[0], where[1:]
    if isinstance(value, dict):
        copy = dict(value)
        if not rest and new is REMOVE:
            del copy[head]
        else:
            copy[head] = replaced(value[head], rest, new)
        return copy
    copy = list(value)
    if not rest and new is REMOVE:
        del copy[head]
    else:
        copy[head] = replaced(value[head], rest, new)
    return copy


REMOVE = object()


def bodies(path, ids):
    """Random JSON, or the endpoint's valid body with one value replaced or removed."""
    valid = fill(VALID[path], ids)
    spots = locations(valid)
    keys = st.sampled_from(FIELD_NAMES) | TEXT
    random_body = st.dictionaries(keys, json_values(ids), max_size=6) | json_values(ids)
    if not spots:
        return random_body
    mutated = st.builds(
        lambda where, new: replaced(valid, where, new),
        st.sampled_from(spots),
        json_values(ids) | st.just(REMOVE),
    )
    return random_body | mutated


@pytest.mark.slow
def test_random_json_posted_to_any_endpoint_is_never_a_500(server, ids):
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data(), path=st.sampled_from(POST_PATHS))
    def check(data, path):
        body = data.draw(bodies(path, ids), label="body")
        assert_not_a_server_error(send(server, "POST", fill(path, ids), body=body))

    check()


@pytest.mark.slow
def test_random_bytes_posted_to_any_endpoint_are_never_a_500(server, ids):
    paths = [fill(p, ids) for p in POST_PATHS]

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(paths), raw=st.binary(max_size=64))
    def check(path, raw):
        assert_not_a_server_error(send(server, "POST", path, raw=raw))

    check()


@pytest.mark.slow
def test_random_query_strings_on_any_get_endpoint_are_never_a_500(server, ids):
    gets = [e for e in ENDPOINTS if e.method == "GET"]
    query_names = sorted({name for e in gets if e.query for name in e.query().fields})
    path_ids = st.sampled_from([*sorted(ids.values()), "f", "nope"]) | TEXT.map(lambda t: quote(t, safe=""))

    @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        endpoint=st.sampled_from(gets),
        path_id=path_ids,
        params=st.dictionaries(st.sampled_from(query_names) | TEXT.filter(bool), TEXT | MEANINGFUL, max_size=4),
    )
    def check(endpoint, path_id, params):
        path = endpoint.path.replace("{id}", path_id or "x")
        assert_not_a_server_error(send(server, "GET", path, params=params))

    check()
