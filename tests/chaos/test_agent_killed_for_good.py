"""An agent SIGKILLed at claim, at deploy and at run and never restarted: with a short
``[server] agent_lease_seconds`` (3 s) the server recovers its runs (claimed but not deployed:
back to Scheduled; deployed or Running: Failed, then retried) and another agent runs them."""

from __future__ import annotations

from tests.chaos.bursts import (
    SHORT_LEASE,
    WORKERS,
    Burst,
    deployed,
    running_and_none_deploying,
    submitted_undeployed,
)
from tests.chaos.conftest import Gate, kill_agent

# --- killed and never restarted: the lease recovers the runs ---------------------------------


def test_runs_claimed_by_an_agent_killed_before_deploying_go_back_to_scheduled_and_another_agent_runs_each_once(
    sqlite_url, start_server, start_agent, gate: Gate, homes
):
    burst = Burst(start_server(sqlite_url, lease=SHORT_LEASE), start_agent, homes, seconds=0.2)
    first = burst.agent("chaos-a", env=gate.env())
    held = burst.wait(lambda runs: len(submitted_undeployed(runs)) >= int(WORKERS), "claims held before deploying")

    kill_agent(first)
    burst.agent("chaos-b", home="home-b")

    assert len(submitted_undeployed(held)) >= int(WORKERS)
    burst.finish(retry_allowed=False)


def test_runs_of_an_agent_killed_mid_deploy_are_recovered_and_another_agent_runs_them(
    postgres_url, start_server, start_agent, gate: Gate, homes
):
    burst = Burst(start_server(postgres_url, lease=SHORT_LEASE), start_agent, homes, seconds=1.0)
    # Six deploys go through, the next ones hold: killed with runs deployed and runs claimed.
    first = burst.agent("chaos-a", env=gate.env(pass_first=6))
    burst.wait(
        lambda runs: len(deployed(runs)) >= 6 and len(submitted_undeployed(runs)) >= 1,
        "six runs deployed and more claimed",
    )

    kill_agent(first)
    burst.agent("chaos-b", home="home-b")

    # Deployed runs may need their retry (their first attempt's agent is gone): allowed here.
    burst.finish(retry_allowed=True)


def test_running_runs_of_an_agent_killed_for_good_fail_then_are_retried_by_another_agent(
    sqlite_url, start_server, start_agent, homes
):
    burst = Burst(start_server(sqlite_url, lease=SHORT_LEASE), start_agent, homes, seconds=3.0)
    first = burst.agent("chaos-a", env={"AGENT__AGENT__MAX_WORKERS": "8"})
    burst.wait(lambda runs: running_and_none_deploying(runs, 8), "eight runs Running, none deploying")

    kill_agent(first)
    burst.agent("chaos-b", home="home-b")

    burst.finish(retry_allowed=True)
