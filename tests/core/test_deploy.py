"""Deploying a run: the in-flight set, failure marking, run-config resolution and the
"Submitted for execution" log."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from marshmallow import Schema, fields

from agent_core import Deployment, hookimpl
from agent_core.client import APIClient
from tests.core.conftest import Backend, FakeClock, create_run, run_logs, run_state, wait_for_state, wait_until


def messages(client: APIClient, run_id: str, level: str | None = None) -> list[str]:
    return [e["message"] for e in run_logs(client, run_id) if level is None or e["level"] == level]


# --- the in-flight set -----------------------------------------------------------------------


def test_a_run_whose_deploy_is_blocked_is_not_submitted_again_by_later_polls(make_agent, sqlite_api: APIClient) -> None:
    entered, release = threading.Event(), threading.Event()

    def blocking(**_: Any) -> str:
        entered.set()
        release.wait(10)
        return "done"

    backend = Backend(behaviour=blocking)
    agent = make_agent([backend], prepare=True)
    run = create_run(sqlite_api)

    assert agent.poll_once() is True
    assert entered.wait(5)
    assert [agent.poll_once(), agent.poll_once()] == [False, False]
    release.set()
    wait_until(lambda: agent.pool.pending == 0)

    assert backend.deployed_ids() == [run["id"]]
    history = [s["type"] for s in sqlite_api.flow_run_states(run["id"])]
    assert history.count("Submitted") == 1


def test_a_prefetched_run_waiting_for_its_start_is_not_submitted_twice(
    make_agent, clock: FakeClock, sqlite_api: APIClient
) -> None:
    release = threading.Event()
    clock.on_wait = lambda _: release.wait(10) if threading.current_thread().name.startswith("deploy") else None
    backend = Backend()
    agent = make_agent([backend], clock=clock, prepare=True)
    run = create_run(sqlite_api, scheduled_start_time=clock.now().add(seconds=5))

    assert agent.poll_once() is True
    wait_until(lambda: clock.waits_of("deploy"))
    # Still Scheduled, so the queue keeps returning it: only the in-flight set holds it back.
    queued = sqlite_api.get_queue([], clock.now().add(seconds=10))
    assert [r["id"] for r in queued] == [run["id"]]
    assert [agent.poll_once(), agent.poll_once()] == [False, False]
    assert agent.is_in_flight(run["id"])

    release.set()
    wait_until(lambda: agent.pool.pending == 0)
    assert backend.deployed_ids() == [run["id"]]
    assert not agent.is_in_flight(run["id"])


# --- success ---------------------------------------------------------------------------------


def test_a_deployed_run_gets_a_submitted_for_execution_log(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    make_agent(start=True)

    wait_until(lambda: messages(sqlite_api, run["id"]))

    assert messages(sqlite_api, run["id"]) == [f"Submitted for execution: workload wl-{run['id']}-1"]


def test_the_deployment_is_recorded_on_the_run(make_agent, sqlite_api: APIClient) -> None:
    deployment = Deployment("x", "pid-4242", info="process 4242", data={"host": "h1"})
    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=lambda **_: deployment)], start=True)

    recorded = wait_until(lambda: sqlite_api.get_flow_run(run["id"])["deployment"])

    assert recorded == deployment.to_dict()
    assert run_state(sqlite_api, run["id"]) == "Submitted"


def test_a_string_from_deploy_flow_is_the_logged_deployment_info(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=lambda **_: "started it somewhere")], start=True)

    wait_until(lambda: messages(sqlite_api, run["id"]))

    assert messages(sqlite_api, run["id"]) == ["Submitted for execution: started it somewhere"]


# --- failure marking -------------------------------------------------------------------------


def test_deploy_flow_raising_fails_the_run_with_the_message_in_state_and_error_log(
    make_agent, sqlite_api: APIClient
) -> None:
    def broken(**_: Any) -> None:
        raise RuntimeError("no capacity left in pool-7")

    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=broken)], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert "no capacity left in pool-7" in failed["state"]["message"]
    wait_until(lambda: messages(sqlite_api, run["id"], "ERROR"))
    assert any("no capacity left in pool-7" in m for m in messages(sqlite_api, run["id"], "ERROR"))
    assert not any(m.startswith("Submitted for execution") for m in messages(sqlite_api, run["id"]))


def test_deploy_flow_returning_none_fails_the_run(make_agent, sqlite_api: APIClient) -> None:
    run = create_run(sqlite_api)
    make_agent([Backend(behaviour=lambda **_: None)], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert "deploy_flow" in failed["state"]["message"]


def test_a_run_config_of_another_backend_type_fails_the_run_naming_both_types(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = Backend()
    run = create_run(sqlite_api, run_config={"type": "docker", "image": "python:3.11"})
    make_agent([backend], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    message = failed["state"]["message"]
    assert "'docker'" in message and "'x'" in message
    assert backend.deployed == []  # never handed to the backend
    wait_until(lambda: messages(sqlite_api, run["id"], "ERROR"))


class XRunConfig(Schema):
    image = fields.String(load_default="x-default-image")
    env = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    labels = fields.List(fields.String(), load_default=list)


class SchemaBackend(Backend):
    @hookimpl
    def run_config_schema(self) -> Schema:
        return XRunConfig()


def test_a_universal_run_config_converts_through_the_backends_schema(make_agent, sqlite_api: APIClient) -> None:
    backend = SchemaBackend()
    run = create_run(sqlite_api, run_config={"type": "universal", "env": {"GREETING": "hi"}, "labels": ["a"]})
    make_agent([backend], start=True)

    wait_until(lambda: backend.deployed)

    assert backend.run_configs[run["id"]] == {"image": "x-default-image", "env": {"GREETING": "hi"}, "labels": ["a"]}


def test_a_run_config_of_the_backends_own_type_is_loaded_through_its_schema(make_agent, sqlite_api: APIClient) -> None:
    backend = SchemaBackend()
    run = create_run(sqlite_api, run_config={"type": "x", "image": "custom"})
    make_agent([backend], start=True)

    wait_until(lambda: backend.deployed)

    assert backend.run_configs[run["id"]] == {"image": "custom", "env": {}, "labels": []}


def test_an_invalid_run_config_of_the_backends_type_fails_the_run_naming_the_field(
    make_agent, sqlite_api: APIClient
) -> None:
    backend = SchemaBackend()
    run = create_run(sqlite_api, run_config={"type": "x", "image": 12})
    make_agent([backend], start=True)

    failed = wait_for_state(sqlite_api, run["id"], "Failed")

    assert "image" in failed["state"]["message"]
    assert backend.deployed == []


@pytest.mark.parametrize("run_config", [None, {"type": "universal"}])
def test_the_workload_env_merges_agent_env_run_config_env_and_run_variables(
    make_agent, sqlite_api: APIClient, run_config: dict[str, Any] | None
) -> None:
    envs: dict[str, dict[str, str]] = {}

    def capture(flow_run: Any, run_config: Any, agent: Any) -> str:
        envs[flow_run.id] = agent.flow_run_env(flow_run, run_config.get("env"))
        return "ok"

    if run_config is not None:
        run_config = {**run_config, "env": {"SHARED": "from-run-config"}}
    run = create_run(sqlite_api, run_config=run_config, parameters={"n": 1})
    make_agent([SchemaBackend(behaviour=capture)], start=True, env={"SHARED": "from-agent", "AGENT_ONLY": "1"})

    env = wait_until(lambda: envs.get(run["id"]))

    assert env["AGENT_ONLY"] == "1"
    assert env["SHARED"] == ("from-agent" if run_config is None else "from-run-config")
    assert env["AGENT_FLOW_RUN_ID"] == run["id"]
    assert env["AGENT_FLOW_RUN_ATTEMPT"] == "1"
    assert env["AGENT_FLOW_RUN_PARAMETERS"] == '{"n": 1}'
