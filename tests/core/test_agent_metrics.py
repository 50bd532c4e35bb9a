"""``GET /metrics`` on the agent's health port, scraped while runs go through a real local agent.

The agent runs ``agent.start()`` on a thread with the local backend and a real API server; the
counters are checked against what happened to the runs (read back from the API).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from agent_core import __version__
from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, wait_for_final, wait_for_state
from agent_core.testing.servers import APIServer
from tests.core.agent_probe import Scrape, health_address
from tests.core.conftest import FakeClock, create_run, wait_until

StartAgent = Callable[..., AgentThread]
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def local_agent(sqlite_server: APIServer, tmp_path: Path) -> Iterator[StartAgent]:
    """``local_agent(**settings)``: a polling local agent with a health port (``.address``)."""
    started: list[AgentThread] = []

    def start(**settings: Any) -> AgentThread:
        address = health_address()
        thread = AgentThread(
            sqlite_server.url,
            "local",
            agent_address=address,
            backend_settings={"work_dir": str(tmp_path / "runs")},
            monitor_interval=0.05,
            **settings,
        )
        thread.address = address  # type: ignore[attr-defined]
        started.append(thread)
        return thread.start()

    yield start
    for thread in started:
        if thread.thread.is_alive():
            thread.stop()


def run_all(agent: AgentThread, client: APIClient, *commands: str) -> list[str]:
    """Create a run per command, wake the agent, and wait for every run to end; their final states."""
    runs = [create_run(client, flow=f"flow-{i}", command=command) for i, command in enumerate(commands)]
    requests.post(f"{agent.address}/api/poke", timeout=10)  # type: ignore[attr-defined]
    return [wait_for_final(client, run["id"], timeout=60)["state"]["type"] for run in runs]


def settled(agent: AgentThread, metric: str, expected: float, /, **labels: str) -> Scrape:
    """A scrape once ``metric`` reached ``expected`` (run events are counted off the engine's threads)."""
    address = agent.address  # type: ignore[attr-defined]
    return wait_until(lambda: (s := Scrape(address)).value(metric, **labels) == expected and s, timeout=20)


def test_the_metrics_count_the_claims_deploys_and_final_states_of_the_runs(
    local_agent: StartAgent, sqlite_api: APIClient
) -> None:
    agent = local_agent()

    states = run_all(agent, sqlite_api, "true", "sleep 0.5", "sh -c 'exit 3'")
    scrape = settled(agent, "agent_flow_runs_final_total", 1, state="Failed")

    assert sorted(states) == ["Failed", "Success", "Success"]
    assert scrape["agent_flow_runs_claimed_total"] == 3
    assert scrape["agent_flow_runs_deployed_total"] == 3
    assert scrape.value("agent_flow_runs_final_total", state="Success") == 2
    assert scrape.value("agent_flow_runs_final_total", state="Cancelled") == 0
    assert scrape["agent_flow_runs_deploy_failed_total"] == 0


def test_a_deploy_that_fails_counts_as_deploy_failed_and_failed(local_agent: StartAgent, sqlite_api: APIClient) -> None:
    agent = local_agent()

    states = run_all(agent, sqlite_api, "no-such-program-anywhere --flag")
    scrape = settled(agent, "agent_flow_runs_final_total", 1, state="Failed")

    assert states == ["Failed"]
    assert scrape["agent_flow_runs_claimed_total"] == 1
    assert scrape["agent_flow_runs_deploy_failed_total"] == 1
    assert scrape["agent_flow_runs_deployed_total"] == 0
    assert scrape["agent_deploy_duration_seconds_count"] == 0


def test_a_cancelled_run_counts_as_cancelled(local_agent: StartAgent, sqlite_api: APIClient) -> None:
    agent = local_agent(cancel_grace_seconds=1.0)
    run = create_run(sqlite_api, command="sleep 60")
    requests.post(f"{agent.address}/api/poke", timeout=10)  # type: ignore[attr-defined]
    wait_for_state(sqlite_api, run["id"], ["Running"], timeout=60)

    sqlite_api.cancel_flow_run(run["id"])
    wait_for_state(sqlite_api, run["id"], ["Cancelled"], timeout=60)
    scrape = settled(agent, "agent_flow_runs_final_total", 1, state="Cancelled")

    assert scrape.value("agent_flow_runs_final_total", state="Success") == 0
    assert scrape.value("agent_flow_runs_final_total", state="Failed") == 0


def test_the_histograms_observe_each_deploy_and_each_run_seen_running(
    local_agent: StartAgent, sqlite_api: APIClient
) -> None:
    agent = local_agent()

    run_all(agent, sqlite_api, "sleep 1", "sleep 1")
    scrape = settled(agent, "agent_flow_runs_final_total", 2, state="Success")

    assert scrape["agent_deploy_duration_seconds_count"] == 2
    assert 0 < scrape["agent_deploy_duration_seconds_sum"] < 60
    # Both slept long enough for the monitor (every 0.05 s) to see them Running.
    assert scrape["agent_flow_run_time_to_running_seconds_count"] == 2
    assert scrape.value("agent_flow_run_time_to_running_seconds_bucket", le="+Inf") == 2


def test_the_gauges_show_a_running_run_as_in_flight_then_monitored(
    local_agent: StartAgent, sqlite_api: APIClient
) -> None:
    agent = local_agent(cancel_grace_seconds=1.0)
    run = create_run(sqlite_api, command="sleep 60")
    requests.post(f"{agent.address}/api/poke", timeout=10)  # type: ignore[attr-defined]
    wait_for_state(sqlite_api, run["id"], ["Running"], timeout=60)

    running = settled(agent, "agent_flow_runs_monitored", 1)
    sqlite_api.cancel_flow_run(run["id"])
    wait_for_state(sqlite_api, run["id"], ["Cancelled"], timeout=60)
    after = settled(agent, "agent_flow_runs_monitored", 0)

    assert running["agent_flow_runs_in_flight"] == 0  # deployed: no longer with a deploy thread
    assert after["agent_flow_runs_in_flight"] == 0


def test_a_connected_agent_reports_the_api_and_backend_up_and_its_probes_ok(local_agent: StartAgent) -> None:
    agent = local_agent()

    scrape = settled(agent, "agent_ready", 1)  # once its first poll is done

    assert scrape.content_type.startswith("text/plain")
    assert (scrape["agent_connected"], scrape["agent_backend_ready"]) == (1, 1)
    assert (scrape["agent_ready"], scrape["agent_live"]) == (1, 1)
    assert scrape.value("agent_info", name=agent.agent.name, backend="local", version=__version__) == 1


def test_polls_and_poll_errors_follow_the_agent(sqlite_server: APIServer, make_agent, clock: FakeClock) -> None:
    agent = make_agent(clock=clock, prepare=True)
    agent.poll_once()
    agent.poll_once()
    sqlite_server.stop()
    agent.poll_once()

    scrape = agent.metrics.registry.get_sample_value
    sqlite_server.start()

    assert (scrape("agent_polls_total"), scrape("agent_poll_errors_total")) == (3, 1)
    assert scrape("agent_connected") == 0


def test_two_agents_in_one_process_keep_metrics_of_their_own(make_agent, sqlite_api: APIClient) -> None:
    busy, idle = make_agent(start=True, labels=["busy"]), make_agent(start=True)
    run = create_run(sqlite_api, labels=["busy"])  # only `busy` may take it
    wait_until(lambda: busy.metrics.registry.get_sample_value("agent_flow_runs_claimed_total") == 1, timeout=30)

    assert idle.metrics.registry.get_sample_value("agent_flow_runs_claimed_total") == 0
    assert sqlite_api.get_flow_run(run["id"])["agent_id"] == busy.id


def test_every_agent_metric_is_in_the_operations_guide(make_agent) -> None:
    agent = make_agent()
    documented = set(re.findall(r"^\| `(agent_\w+)", OPERATIONS.read_text(), re.M))
    documented |= set(re.findall(r"^\| `agent_\w+`, `(agent_\w+)`", OPERATIONS.read_text(), re.M))

    families = agent.metrics.registry.collect()
    exposed = {f"{f.name}_total" if f.type == "counter" else f.name for f in families}

    assert exposed - documented == set()
    assert documented - exposed == set()
