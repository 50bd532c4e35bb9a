"""The API's endpoints: one handler per route, declared with its roles and schemas."""

from __future__ import annotations

from typing import Any

import pendulum

from agent_core import __version__
from agent_core.errors import AuthError, BadRequest
from agent_core.server import schemas as s
from agent_core.server.longpoll import answer_queue
from agent_core.server.routing import AGENT_ID_HEADER, ALL_ROLES, Call, Endpoint
from agent_core.server.settings import MAX_WAIT_SECONDS
from agent_core.states import State

# What this server supports, for agents to choose from (GET /api/hello).
FEATURES = ("long_poll", "claim", "leases", "leave", "state_deployment")

RUNNER = frozenset({"runner", "admin"})
USER = frozenset({"user", "admin"})
ADMIN = frozenset({"admin"})


def hello(call: Call) -> dict[str, Any]:
    return {
        "name": "agent",
        "version": __version__,
        "api_version": 1,
        "features": list(FEATURES),
        "max_wait_seconds": MAX_WAIT_SECONDS,
        "agent_lease_seconds": call.service.settings.agent_lease_seconds,
    }


def auth_info(call: Call) -> dict[str, Any]:
    return {
        "tenant_id": call.tenant,
        "tenant": call.store.tenant_name(call.tenant),
        "role": call.principal.role,
        "key_id": call.principal.key_id,
    }


def register_flow(call: Call) -> dict[str, Any]:
    flow, changed = call.store.register_flow(call.tenant, call.body)
    return {**flow, "changed": changed}


def list_flows(call: Call) -> dict[str, Any]:
    items, cursor = call.store.list_flows(call.tenant, call.query["limit"], call.query["cursor"])
    return {"items": items, "next_cursor": cursor}


def get_flow(call: Call) -> dict[str, Any]:
    return call.store.get_flow(call.tenant, call.params["id"])


def create_run(call: Call) -> tuple[int, dict[str, Any]]:
    run, created = call.store.create_run(call.tenant, call.body)
    # 200 rather than 201 tells a retrying client that its idempotency key matched a run.
    return (201 if created else 200), run


def list_runs(call: Call) -> dict[str, Any]:
    q = call.query
    states = [State.parse(x).value for x in (q["state"] or "").split(",") if x.strip()]
    items, cursor = call.store.list_runs(
        call.tenant,
        limit=q["limit"],
        cursor=q["cursor"],
        states=states or None,
        flow=q["flow"],
        agent_id=q["agent_id"],
        label=q["label"],
    )
    return {"items": items, "next_cursor": cursor}


def get_run(call: Call) -> dict[str, Any]:
    return call.store.get_run(call.tenant, call.params["id"])


def set_state(call: Call) -> dict[str, Any]:
    state = call.body["state"]
    return call.store.set_state(
        call.tenant,
        call.params["id"],
        version=call.body["version"],
        state=State(state["type"]),
        message=state["message"],
        agent_id=call.agent_id,
        deployment=call.body["deployment"],
    )


def set_deployment(call: Call) -> dict[str, Any]:
    return call.store.set_deployment(call.tenant, call.params["id"], call.body["deployment"], agent_id=call.agent_id)


def cancel_run(call: Call) -> dict[str, Any]:
    return call.store.cancel_run(call.tenant, call.params["id"], call.body.get("message", ""))


def run_states(call: Call) -> dict[str, Any]:
    return {"items": call.store.state_history(call.tenant, call.params["id"])}


def prune_runs(call: Call) -> dict[str, Any]:
    before = pendulum.now("UTC").subtract(seconds=call.body["older_than_seconds"])
    return call.store.prune_runs(call.tenant, before=before, states=call.body["states"], dry_run=call.body["dry_run"])


def queue(call: Call) -> dict[str, Any]:
    body = call.body
    wait = body["wait_seconds"]
    if wait > MAX_WAIT_SECONDS:
        raise BadRequest(
            "Invalid request",
            {"wait_seconds": f"at most {MAX_WAIT_SECONDS:g} (max_wait_seconds in GET /api/hello), not {wait:g}"},
            422,
        )
    if body["claim"] and not call.agent_id:
        raise BadRequest(
            "Invalid request",
            {AGENT_ID_HEADER: "claim needs the header naming the registered agent that claims (POST /api/agents)"},
            422,
        )
    runs = answer_queue(
        call.store,
        call.service.wakeups,
        call.tenant,
        body.get("labels") or [],
        body["before"] or pendulum.now("UTC"),
        body["limit"],
        wait_seconds=wait,
        claim_for=call.agent_id if body["claim"] else None,
    )
    return {"items": runs}


def write_logs(call: Call) -> dict[str, Any]:
    return {"written": call.store.write_logs(call.tenant, call.body["logs"])}


def read_logs(call: Call) -> dict[str, Any]:
    items, cursor = call.store.read_logs(call.tenant, call.params["id"], call.query["cursor"], call.query["limit"])
    return {"items": items, "next_cursor": cursor}


def register_agent(call: Call) -> dict[str, Any]:
    return call.store.register_agent(call.tenant, call.body, call.service.settings.agent_lease_seconds)


def agent_heartbeat(call: Call) -> dict[str, Any]:
    return call.store.heartbeat(call.tenant, call.params["id"], call.service.settings.agent_lease_seconds)


def leave_agent(call: Call) -> dict[str, Any]:
    if call.agent_id is not None and call.agent_id != call.params["id"]:
        raise AuthError("Forbidden", f"agent {call.agent_id} may not leave for agent {call.params['id']}", 403)
    return call.store.leave_agent(call.tenant, call.params["id"])


def list_agents(call: Call) -> dict[str, Any]:
    return {"items": call.store.list_agents(call.tenant)}


def create_agent_config(call: Call) -> dict[str, Any]:
    return call.store.create_agent_config(call.tenant, call.body["name"], call.body["settings"])


def get_agent_config(call: Call) -> dict[str, Any]:
    return call.store.get_agent_config(call.tenant, call.params["id"])


def create_key(call: Call) -> dict[str, Any]:
    key, secret = call.store.create_key(call.tenant, call.body["role"], call.body["name"])
    return {**key, "key": secret}


def list_keys(call: Call) -> dict[str, Any]:
    return {"items": call.store.list_keys(call.tenant)}


def revoke_key(call: Call) -> dict[str, Any]:
    if call.principal.key_id == call.params["id"]:
        raise BadRequest("Cannot revoke own key", "use another admin key to revoke this one")
    return call.store.revoke_key(call.tenant, call.params["id"])


ENDPOINTS: list[Endpoint] = [
    Endpoint(
        "GET",
        "/api/hello",
        "Connection test: the API's name and version",
        hello,
        roles=None,
        tags=("meta",),
        response="Hello",
    ),
    Endpoint("GET", "/api/auth", "The caller's tenant and role", auth_info, tags=("meta",), response="Auth"),
    Endpoint(
        "POST",
        "/api/flows",
        "Register a flow (a changed definition bumps its version)",
        register_flow,
        USER,
        body=s.FlowCreateSchema,
        tags=("flows",),
        response="Flow",
    ),
    Endpoint(
        "GET",
        "/api/flows",
        "List flows by name",
        list_flows,
        query=s.PageQuery,
        tags=("flows",),
        response="FlowPage",
    ),
    Endpoint("GET", "/api/flows/{id}", "Read a flow by id or name", get_flow, tags=("flows",), response="Flow"),
    Endpoint(
        "POST",
        "/api/flow-runs",
        "Create a flow run (an idempotency key returns the first run)",
        create_run,
        USER,
        body=s.FlowRunCreateSchema,
        status=201,
        tags=("flow-runs",),
        response="FlowRun",
        also=(200,),
    ),
    Endpoint(
        "GET",
        "/api/flow-runs",
        "List flow runs, newest first",
        list_runs,
        query=s.RunListQuery,
        tags=("flow-runs",),
        response="FlowRunPage",
    ),
    Endpoint("GET", "/api/flow-runs/{id}", "Read a flow run", get_run, tags=("flow-runs",), response="FlowRun"),
    Endpoint(
        "POST",
        "/api/flow-runs/{id}/state",
        "Change a run's state (409 stale version, 422 illegal); a change to Running may record the deployment",
        set_state,
        RUNNER,
        body=s.SetStateSchema,
        agent_header="the agent a change to Submitted is for; with a deployment, the agent that must hold the run",
        tags=("flow-runs",),
        response="FlowRun",
    ),
    Endpoint(
        "POST",
        "/api/flow-runs/{id}/deployment",
        "Record the deployment a backend started",
        set_deployment,
        RUNNER,
        body=s.SetDeploymentSchema,
        tags=("flow-runs",),
        response="FlowRun",
        agent_header="when sent, that agent must hold the run (else a 409 Deployment refused)",
    ),
    Endpoint(
        "POST",
        "/api/flow-runs/{id}/cancel",
        "Ask for a run's cancellation",
        cancel_run,
        USER,
        body=s.CancelSchema,
        tags=("flow-runs",),
        response="FlowRun",
    ),
    Endpoint(
        "GET",
        "/api/flow-runs/{id}/states",
        "A run's state history",
        run_states,
        tags=("flow-runs",),
        response="StateEntries",
    ),
    Endpoint(
        "POST",
        "/api/flow-runs/prune",
        "Delete finished runs that ended long ago, with their logs and history",
        prune_runs,
        ADMIN,
        body=s.PruneSchema,
        tags=("flow-runs",),
    ),
    Endpoint(
        "GET",
        "/api/flow-runs/{id}/logs",
        "A run's logs in order, from a cursor",
        read_logs,
        query=s.LogQuery,
        tags=("logs",),
        response="LogPage",
    ),
    Endpoint(
        "POST",
        "/api/logs",
        "Write a batch of run logs",
        write_logs,
        RUNNER,
        body=s.LogBatchSchema,
        status=201,
        tags=("logs",),
        response="LogsWritten",
    ),
    Endpoint(
        "POST",
        "/api/queue",
        "Runs ready for an agent with these labels; waits for them (wait_seconds), claims them (claim)",
        queue,
        RUNNER,
        body=s.QueueSchema,
        agent_header="the registered agent that claims (required with claim: true, else a 422)",
        tags=("agents",),
        response="FlowRuns",
    ),
    Endpoint(
        "POST",
        "/api/agents",
        "Register an agent",
        register_agent,
        RUNNER,
        body=s.AgentRegisterSchema,
        status=201,
        tags=("agents",),
        response="Agent",
    ),
    Endpoint(
        "POST",
        "/api/agents/{id}/heartbeat",
        "Heartbeat: renews the agent's lease; answers its Cancelling runs and whether its lease expired",
        agent_heartbeat,
        RUNNER,
        body=s.Empty,
        tags=("agents",),
        response="Heartbeat",
    ),
    Endpoint(
        "POST",
        "/api/agents/{id}/leave",
        "The agent exited cleanly: hand back its undeployed runs, mark it left",
        leave_agent,
        RUNNER,
        body=s.Empty,
        agent_header="when sent, must be the agent's own id (else a 403)",
        tags=("agents",),
        response="AgentLeft",
    ),
    Endpoint(
        "GET", "/api/agents", "List agents with their last heartbeat", list_agents, tags=("agents",), response="Agents"
    ),
    Endpoint(
        "POST",
        "/api/agent-configs",
        "Create a server-side agent configuration",
        create_agent_config,
        ADMIN,
        body=s.AgentConfigCreateSchema,
        status=201,
        tags=("agents",),
        response="AgentConfig",
    ),
    Endpoint(
        "GET",
        "/api/agent-configs/{id}",
        "Read a server-side agent configuration",
        get_agent_config,
        ALL_ROLES,
        tags=("agents",),
        response="AgentConfig",
    ),
    Endpoint(
        "POST",
        "/api/keys",
        "Create an API key (its secret is shown once)",
        create_key,
        ADMIN,
        body=s.KeyCreateSchema,
        status=201,
        tags=("keys",),
        response="Key",
    ),
    Endpoint("GET", "/api/keys", "List the tenant's API keys", list_keys, ADMIN, tags=("keys",), response="Keys"),
    Endpoint("DELETE", "/api/keys/{id}", "Revoke an API key", revoke_key, ADMIN, tags=("keys",), response="Key"),
]
