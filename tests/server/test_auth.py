"""Auth: the role x endpoint matrix, keys (missing, bad, revoked), and tenant isolation.

The matrix below is the specification: for every endpoint the API declares, which roles may
call it. Each (endpoint, role) is a case that sends a well-formed request over HTTP: an allowed
role gets a 2xx, any other a 403.
"""

import uuid

import pytest
import requests
import sqlalchemy as sa

from agent_core.server.endpoints import ENDPOINTS
from agent_core.testing.servers import APIServer
from tests.server.helpers import fill

ROLES = ("runner", "user", "admin")
ALL = {"runner", "user", "admin"}
RUNNER = {"runner", "admin"}
USER = {"user", "admin"}
ADMIN = {"admin"}
PUBLIC = None

ALLOWED = {
    ("GET", "/api/hello"): PUBLIC,
    ("GET", "/api/auth"): ALL,
    ("POST", "/api/flows"): USER,
    ("GET", "/api/flows"): ALL,
    ("GET", "/api/flows/{id}"): ALL,
    ("POST", "/api/flow-runs"): USER,
    ("GET", "/api/flow-runs"): ALL,
    ("GET", "/api/flow-runs/{id}"): ALL,
    ("POST", "/api/flow-runs/{id}/state"): RUNNER,
    ("POST", "/api/flow-runs/{id}/deployment"): RUNNER,
    ("POST", "/api/flow-runs/{id}/cancel"): USER,
    ("GET", "/api/flow-runs/{id}/states"): ALL,
    ("POST", "/api/flow-runs/prune"): ADMIN,
    ("GET", "/api/flow-runs/{id}/logs"): ALL,
    ("POST", "/api/logs"): RUNNER,
    ("POST", "/api/queue"): RUNNER,
    ("POST", "/api/agents"): RUNNER,
    ("POST", "/api/agents/{id}/heartbeat"): RUNNER,
    ("GET", "/api/agents"): ALL,
    ("POST", "/api/agent-configs"): ADMIN,
    ("GET", "/api/agent-configs/{id}"): ALL,
    ("POST", "/api/keys"): ADMIN,
    ("GET", "/api/keys"): ADMIN,
    ("DELETE", "/api/keys/{id}"): ADMIN,
}
PROTECTED = [endpoint for endpoint, roles in ALLOWED.items() if roles is not PUBLIC]
MATRIX = [(endpoint, role) for endpoint, roles in ALLOWED.items() if roles is not PUBLIC for role in ROLES]


@pytest.fixture(scope="module")
def server(module_db_url):
    """One server with auth on per database; every case makes the objects it acts on."""
    with APIServer(module_db_url, auth=True) as srv:
        yield srv


@pytest.fixture(scope="module")
def keys(server):
    """Tenant A's secret for each role."""
    tenant = server.store.ensure_tenant("tenant-a")
    return {role: server.store.create_key(tenant, role, f"a-{role}")[1] for role in ROLES}


@pytest.fixture(scope="module")
def admin(server, keys):
    return server.client(keys["admin"])


def call(server, method, path, body=None, key=None, headers=None):
    headers = dict(headers or {})
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return requests.request(method, f"{server.url}{path}", json=body, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def targets(admin):
    """Objects of tenant A that requests of the matrix read or act on without using them up."""
    flow = admin.register_flow("auth-matrix", "echo hi")
    return {
        "flow": flow,
        "run": admin.create_flow_run(flow_id=flow["id"]),
        "agent": admin.register_agent(name="a", backend="local", labels=[]),
        "config": admin.create_agent_config("c", {}),
        "key": admin.create_key("runner", "revoked again and again"),
    }


def well_formed_request(endpoint, admin, targets):
    """(path, body) of a request to ``endpoint`` that succeeds for an allowed role."""
    _, path = endpoint
    run = targets["run"]
    if endpoint in {("POST", "/api/flow-runs/{id}/state"), ("POST", "/api/flow-runs/{id}/cancel")}:
        run = admin.create_flow_run(flow_id=targets["flow"]["id"])  # these use a Scheduled run up
    bodies = {
        ("POST", "/api/flows"): {"name": f"flow-{uuid.uuid4().hex[:8]}", "command": "echo"},
        ("POST", "/api/flow-runs"): {"flow_id": targets["flow"]["id"]},
        ("POST", "/api/flow-runs/{id}/state"): {"version": 1, "state": {"type": "Submitted"}},
        ("POST", "/api/flow-runs/{id}/deployment"): {"deployment": {"backend": "local", "platform_id": "1"}},
        ("POST", "/api/flow-runs/{id}/cancel"): {},
        ("POST", "/api/flow-runs/prune"): {"older_than_seconds": 0, "dry_run": True},
        ("POST", "/api/logs"): {"logs": [{"flow_run_id": run["id"], "message": "hello"}]},
        ("POST", "/api/queue"): {"labels": []},
        ("POST", "/api/agents"): {"name": "agent", "backend": "local"},
        ("POST", "/api/agents/{id}/heartbeat"): {},
        ("POST", "/api/agent-configs"): {"name": "config", "settings": {}},
        ("POST", "/api/keys"): {"role": "runner"},
    }
    owner = {
        "/api/flows/{id}": "flow",
        "/api/agents/{id}/heartbeat": "agent",
        "/api/agent-configs/{id}": "config",
        "/api/keys/{id}": "key",
    }
    target = targets[owner[path]]["id"] if path in owner else run["id"]
    return path.replace("{id}", target), bodies.get(endpoint)


def test_the_matrix_covers_every_declared_endpoint():
    assert set(ALLOWED) == {(e.method, e.path) for e in ENDPOINTS}


@pytest.mark.parametrize(("endpoint", "role"), MATRIX, ids=[f"{m} {p} as {r}" for (m, p), r in MATRIX])
def test_each_role_may_call_exactly_its_endpoints(server, keys, admin, targets, endpoint, role):
    path, body = well_formed_request(endpoint, admin, targets)

    response = call(server, endpoint[0], path, body, key=keys[role])

    if role in ALLOWED[endpoint]:
        assert 200 <= response.status_code < 300, response.text
    else:
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "Forbidden"
        assert repr(role) in response.json()["detail"]


def test_hello_needs_no_key(server):
    assert call(server, "GET", "/api/hello").status_code == 200


@pytest.mark.parametrize("endpoint", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_a_request_without_a_key_is_401(server, admin, targets, endpoint):
    path, body = well_formed_request(endpoint, admin, targets)

    response = call(server, endpoint[0], path, body)

    assert response.status_code == 401
    assert response.json()["error"] == "Missing API key"


@pytest.mark.parametrize("endpoint", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_a_request_with_an_unknown_key_is_401(server, admin, targets, endpoint):
    path, body = well_formed_request(endpoint, admin, targets)

    response = call(server, endpoint[0], path, body, key="agk_" + "x" * 43)

    assert response.status_code == 401
    assert response.json()["error"] == "Invalid API key"


@pytest.fixture(scope="module")
def revoked(admin):
    """A revoked admin key of tenant A."""
    key = admin.create_key("admin", "revoked")
    admin.revoke_key(key["id"])
    return key


def test_a_key_works_until_it_is_revoked(server, admin):
    key = admin.create_key("runner", "short-lived")
    assert call(server, "GET", "/api/auth", key=key["key"]).status_code == 200

    admin.revoke_key(key["id"])

    assert call(server, "GET", "/api/auth", key=key["key"]).status_code == 401


@pytest.mark.parametrize("endpoint", PROTECTED, ids=[f"{m} {p}" for m, p in PROTECTED])
def test_a_request_with_a_revoked_key_is_401(server, admin, targets, revoked, endpoint):
    path, body = well_formed_request(endpoint, admin, targets)

    response = call(server, endpoint[0], path, body, key=revoked["key"])

    assert response.status_code == 401


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "agk_nobearer"])
def test_a_malformed_authorization_header_is_401(server, header):
    response = call(server, "GET", "/api/auth", headers={"Authorization": header})

    assert response.status_code == 401


def test_a_forbidden_request_changes_nothing(server, keys, admin):
    response = call(server, "POST", "/api/flows", {"name": "not-by-runner", "command": "x"}, key=keys["runner"])

    assert response.status_code == 403
    assert "not-by-runner" not in {f["name"] for f in admin.list_flows()}


@pytest.mark.parametrize("role", ROLES)
def test_the_auth_endpoint_tells_the_caller_its_tenant_and_role(server, keys, role):
    info = call(server, "GET", "/api/auth", key=keys[role]).json()

    assert (info["tenant"], info["role"]) == ("tenant-a", role)


def test_a_key_created_through_the_api_works_at_once(server, admin):
    created = admin.create_key("user", "new user")

    info = call(server, "GET", "/api/auth", key=created["key"]).json()

    assert (info["role"], info["key_id"]) == ("user", created["id"])


def test_the_key_secret_is_shown_only_at_creation(admin):
    created = admin.create_key("runner", "shown once")

    listed = {k["id"]: k for k in admin.list_keys()}[created["id"]]

    assert "key" not in listed
    assert created["key"] not in str(listed)
    assert created["key"].startswith(listed["prefix"])


def test_the_database_keeps_only_a_hash_of_the_key(server, admin):
    created = admin.create_key("runner", "hashed")

    with server.store.engine.connect() as conn:
        rows = [tuple(map(str, row)) for row in conn.execute(sa.text("SELECT * FROM api_keys"))]

    assert rows
    assert not any(created["key"] in value for row in rows for value in row)


def test_an_admin_cannot_revoke_its_own_key(server, keys, admin):
    own = admin.auth_info()["key_id"]

    response = call(server, "DELETE", f"/api/keys/{own}", key=keys["admin"])

    assert response.status_code == 400
    assert call(server, "GET", "/api/auth", key=keys["admin"]).status_code == 200


def test_without_auth_a_request_without_key_acts_as_admin_of_the_default_tenant(api):
    info = api.auth_info()

    assert (info["tenant"], info["role"]) == ("default", "admin")


def test_without_auth_a_key_that_is_sent_is_still_checked(api_server):
    response = call(api_server, "GET", "/api/auth", key="agk_" + "x" * 43)

    assert response.status_code == 401


# --- tenant isolation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tenant_a(server, admin):
    """Tenant A's objects, made by its admin."""
    flow = admin.register_flow("a-secret-flow", "echo a")
    run = admin.create_flow_run(flow_id=flow["id"])
    admin.write_logs([{"flow_run_id": run["id"], "message": "a's log"}])
    agent = admin.register_agent(name="a-agent", backend="local", labels=[])
    config = admin.create_agent_config("a-config", {"x": "1"})
    key = admin.create_key("runner", "a-runner")
    return {"flow": flow, "run": run, "agent": agent, "config": config, "key": key}


@pytest.fixture(scope="module")
def b_admin(server):
    """An admin key of tenant B."""
    return server.store.create_key(server.store.ensure_tenant("tenant-b"), "admin", "b-admin")[1]


ISOLATION = [
    ("GET", "/api/flows/{flow}", None),
    ("GET", "/api/flows/a-secret-flow", None),
    ("GET", "/api/flow-runs/{run}", None),
    ("GET", "/api/flow-runs/{run}/states", None),
    ("GET", "/api/flow-runs/{run}/logs", None),
    ("POST", "/api/flow-runs/{run}/state", {"version": 1, "state": {"type": "Submitted"}}),
    ("POST", "/api/flow-runs/{run}/deployment", {"deployment": {"backend": "x", "platform_id": "1"}}),
    ("POST", "/api/flow-runs/{run}/cancel", {}),
    ("POST", "/api/logs", {"logs": [{"flow_run_id": "{run}", "message": "b was here"}]}),
    ("POST", "/api/flow-runs", {"flow_id": "{flow}"}),
    ("POST", "/api/flow-runs", {"flow_name": "a-secret-flow"}),
    ("POST", "/api/agents/{agent}/heartbeat", {}),
    ("POST", "/api/agents", {"name": "b", "agent_config_id": "{config}"}),
    ("GET", "/api/agent-configs/{config}", None),
    ("DELETE", "/api/keys/{key}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ISOLATION, ids=[f"{m} {p} {b or ''}" for m, p, b in ISOLATION])
def test_another_tenant_gets_404_for_tenant_a_objects(server, tenant_a, b_admin, method, path, body):
    ids = {name: obj["id"] for name, obj in tenant_a.items()}

    response = call(server, method, fill(path, ids), fill(body, ids), key=b_admin)

    assert response.status_code == 404, response.text


def test_another_tenant_leaves_tenant_a_run_untouched(server, admin, tenant_a, b_admin):
    run_id = tenant_a["run"]["id"]
    call(server, "POST", f"/api/flow-runs/{run_id}/state", {"version": 1, "state": {"type": "Running"}}, b_admin)
    call(server, "POST", f"/api/flow-runs/{run_id}/cancel", {}, b_admin)

    run = admin.get_flow_run(run_id)

    assert (run["state"]["type"], run["version"]) == ("Scheduled", 1)
    assert [e["message"] for e in admin.read_logs(run_id)[0]] == ["a's log"]


LISTS = [
    ("GET", "/api/flows", None, "flow"),
    ("GET", "/api/flow-runs", None, "run"),
    ("POST", "/api/queue", {"labels": []}, "run"),
    ("GET", "/api/agents", None, "agent"),
    ("GET", "/api/keys", None, "key"),
]


@pytest.mark.parametrize(("method", "path", "body", "hidden"), LISTS, ids=[f"{m} {p}" for m, p, _, _ in LISTS])
def test_another_tenant_lists_none_of_tenant_a_objects(server, tenant_a, b_admin, method, path, body, hidden):
    response = call(server, method, path, body, key=b_admin)

    assert response.status_code == 200
    assert tenant_a[hidden]["id"] not in response.text


def test_two_tenants_may_each_have_a_flow_of_the_same_name(server, admin, b_admin):
    a_flow = admin.register_flow("common-name", "echo a")

    response = call(server, "POST", "/api/flows", {"name": "common-name", "command": "echo b"}, key=b_admin)

    assert response.status_code == 200
    assert response.json()["id"] != a_flow["id"]
    assert response.json()["version"] == 1
    assert admin.get_flow("common-name")["command"] == "echo a"
