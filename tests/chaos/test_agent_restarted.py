"""An agent SIGKILLed at claim, at deploy and at run and restarted under the same name before
its lease runs out: it takes its runs back (re-attach, or hand back what it never launched)
and nothing is lost or runs twice."""

from __future__ import annotations

from tests.chaos.bursts import (
    LONG_LEASE,
    WORKERS,
    Burst,
    deployed,
    running_and_none_deploying,
    submitted_undeployed,
)
from tests.chaos.conftest import Gate, kill_agent

# --- killed and restarted in time: the agent takes its runs back -----------------------------
# No retries: a restart in time needs none, so a run failed on the way is lost for good.


def test_an_agent_killed_before_deploying_and_restarted_in_time_hands_back_or_runs_its_claims_once(
    sqlite_url, start_server, start_agent, gate: Gate, homes
):
    burst = Burst(start_server(sqlite_url, lease=LONG_LEASE), start_agent, homes, seconds=0.2, retries=0)
    first = burst.agent("chaos-a", env=gate.env())
    burst.wait(lambda runs: len(submitted_undeployed(runs)) >= int(WORKERS), "claims held before deploying")

    kill_agent(first)
    gate.open()
    burst.agent("chaos-a")

    burst.finish(retry_allowed=False)


def test_an_agent_killed_mid_deploy_and_restarted_in_time_runs_every_run_once(
    sqlite_url, start_server, start_agent, gate: Gate, homes
):
    burst = Burst(start_server(sqlite_url, lease=LONG_LEASE), start_agent, homes, seconds=1.0, retries=0)
    first = burst.agent("chaos-a", env=gate.env(pass_first=6))
    burst.wait(
        lambda runs: len(deployed(runs)) >= 6 and len(submitted_undeployed(runs)) >= 1,
        "six runs deployed and more claimed",
    )

    kill_agent(first)
    gate.open()
    burst.agent("chaos-a")

    burst.finish(retry_allowed=False)


def test_an_agent_killed_while_its_runs_run_and_restarted_in_time_reattaches_and_each_runs_once(
    sqlite_url, start_server, start_agent, homes
):
    burst = Burst(start_server(sqlite_url, lease=LONG_LEASE), start_agent, homes, seconds=3.0, retries=0)
    first = burst.agent("chaos-a", env={"AGENT__AGENT__MAX_WORKERS": "8"})
    burst.wait(lambda runs: running_and_none_deploying(runs, 8), "eight runs Running, none deploying")

    kill_agent(first)
    burst.agent("chaos-a")

    burst.finish(retry_allowed=False)
