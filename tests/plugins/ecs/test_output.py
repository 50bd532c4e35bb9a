"""The task's CloudWatch stream in the run's logs: while it runs, paged, once each, and the tail."""

from __future__ import annotations

import time
from typing import Any

from agent_core import Deployment, FlowRun
from agent_core.testing.harness import wait_for_final, wait_for_state, wait_until
from agent_plugin_ecs.state import state_of
from tests.plugins.ecs.helpers import create_run, log_messages


def test_output_reaches_the_runs_logs_while_the_task_runs(client, start_agent, runtime) -> None:
    run = create_run(client, "sh -c 'echo early-line; sleep 4; echo late-line'")
    start_agent()
    wait_for_state(client, run["id"], ["Running"], 30)
    assert wait_until(lambda: "early-line" in log_messages(client, run["id"]), 15)
    assert client.get_flow_run(run["id"])["state"]["type"] == "Running"
    assert wait_for_final(client, run["id"], 30)["state"]["type"] == "Success"
    messages = log_messages(client, run["id"])
    assert messages.count("early-line") == 1 and messages.count("late-line") == 1


def test_output_is_paged_with_the_forward_token_in_order_and_once(client, start_agent, runtime) -> None:
    run = create_run(client, "sh -c 'for n in 1 2 3 4 5 6 7 8 9 10 11; do echo line-$n; done'")
    agent = start_agent()
    state_of(agent.agent).log_page_limit = 3  # 11 events: four pages
    assert wait_for_final(client, run["id"], 30)["state"]["type"] == "Success"
    lines = [m for m in log_messages(client, run["id"]) if m.startswith("line-")]
    assert lines == [f"line-{n}" for n in range(1, 12)]


def test_the_tail_of_the_stream_is_what_deployment_logs_gives(client, start_agent, runtime, logs, log_group) -> None:
    run = create_run(client, "sh -c 'for n in 1 2 3 4 5; do echo tail-$n; done'")
    agent = start_agent()
    final = wait_for_final(client, run["id"], 30)
    deployment = Deployment.from_dict(final["deployment"])
    assert deployment.data["log_group"] == log_group
    lines = agent.agent.pm.hook.deployment_logs(
        flow_run=FlowRun.from_api(final), deployment=deployment, agent=agent.agent, tail=2
    )
    assert lines == ["tail-4", "tail-5"]


def test_a_task_whose_stream_never_appeared_says_so(client, start_agent, runtime, logs, log_group) -> None:
    run = create_run(client, "echo nothing")
    agent = start_agent()
    final = wait_for_final(client, run["id"], 30)
    data: dict[str, Any] = {**final["deployment"]["data"], "log_stream": "agent/flow/never-started"}
    deployment = Deployment("ecs", final["deployment"]["platform_id"], data=data)
    assert (
        agent.agent.pm.hook.deployment_logs(
            flow_run=FlowRun.from_api(final), deployment=deployment, agent=agent.agent, tail=5
        )
        is None
    )
    time.sleep(0.1)
    assert wait_until(
        lambda: any(
            "No output to attach: log stream 'agent/flow/never-started'" in m and "may never have started" in m
            for m in log_messages(client, run["id"])
        ),
        10,
    ), log_messages(client, run["id"])
