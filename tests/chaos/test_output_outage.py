"""Output printed while the API is away, then SIGTERM: no line is lost.

A workload prints numbered lines; the API server is killed while it prints, the agent gets
SIGTERM while the API is still away and exits (its drain is bounded) before the server comes
back. Every line must still reach the run's logs: a line counts as shipped only once the API
has it, so the same agent restarted re-attaches to the run and ships what is left.
"""

from __future__ import annotations

import re
import signal
import time

from agent_core.client import APIClient
from tests.chaos.conftest import FAST_AGENT, marker_command, tally, until_final, wait_until
from tests.e2e.conftest import log_messages

LINES = 40
LINE_GAP = 0.1
DRAIN_TIMEOUT = "3"
# The agent's whole shutdown: the drain, then a bounded wait for the API (issue 8: one budget).
EXIT_WITHIN = 45
LINE = re.compile(r"chaos-line (\d+)")


def test_output_printed_during_an_outage_and_then_sigterm_loses_no_line(start_server, start_agent, homes):
    server = start_server(f"sqlite:///{homes / 'chaos.db'}")
    markers = homes / "markers"
    markers.mkdir()
    client = APIClient(server.url, retries=5, backoff=0.2)
    flow = client.register_flow("printer", marker_command(markers, lines=LINES, line_gap=LINE_GAP))
    run_ids = [client.create_flow_run(flow_id=flow["id"])["id"] for _ in range(2)]
    env = {**FAST_AGENT, "AGENT__AGENT__DRAIN_TIMEOUT": DRAIN_TIMEOUT}
    home = homes / "home-a"
    agent = start_agent(server.url, name="chaos-printer", home=home, env=env)
    agents = [agent]

    def outputs() -> str:
        text = "\n".join(f"--- agent ---\n{a.output()[-3000:]}\n{a.errors()[-1000:]}" for a in agents)
        return f"{text}\n--- server ---\n{server.output()[-2000:]}"

    def shipped(run_id: str) -> list[int]:
        return [int(m.group(1)) for line in log_messages(client, run_id) for m in LINE.finditer(line)]

    wait_until(
        lambda: all(len(shipped(run_id)) >= 5 for run_id in run_ids),
        30,
        message=lambda: f"the first lines in the runs' logs\n{outputs()}",
    )
    server.kill()
    time.sleep(LINES * LINE_GAP + 1)  # the workloads print the rest, and end, while the API is away
    agent.send(signal.SIGTERM)
    agent.wait(EXIT_WITHIN)  # still no API
    server.start()
    agents.append(start_agent(server.url, name="chaos-printer", home=home, env=env))

    runs = until_final(client, run_ids, 45)
    result = tally(client, runs, run_ids, markers)
    for run_id in run_ids:
        lines = shipped(run_id)
        missing = sorted(set(range(1, LINES + 1)) - set(lines))
        result.lines_lost += len(missing)
        if missing:
            result.details.append(f"lines lost: run {run_id} is missing {missing} ({len(lines)} shipped)")
        if len(lines) != len(set(lines)):
            result.details.append(f"run {run_id}: {len(lines) - len(set(lines))} lines shipped twice (not counted)")
    client.close()
    result.assert_clean(outputs())
