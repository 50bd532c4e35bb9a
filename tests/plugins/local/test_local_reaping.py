"""Finished local runs are reaped at once: the agent's process tree follows the runs in flight.

A supervisor that has exited is a zombie until the agent waits for it. Here the monitor looks
at runs only every few seconds, so nothing but the backend's own reaping can keep a burst of
short runs from leaving a zombie per finished run behind.
"""

from __future__ import annotations

import threading
from pathlib import Path

from tests.e2e.conftest import wait_for_state

RUNS = 60
WORKERS = 2


def descendants(root: int) -> tuple[int, int]:
    """``(processes, zombies)`` below ``root`` in the process tree (zombies included in both)."""
    parents: dict[int, int] = {}
    zombie: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        if fields[0] == "Z":
            zombie.add(pid)
    below = set()
    for pid in parents:
        seen, ancestor = set(), parents.get(pid)
        while ancestor and ancestor not in seen:
            if ancestor == root:
                below.add(pid)
                break
            seen.add(ancestor)
            ancestor = parents.get(ancestor)
    return len(below), len(below & zombie)


def test_a_burst_of_short_runs_leaves_no_supervisor_waiting_to_be_reaped(server, client, create_run, start_agent):
    runs = [create_run("true") for _ in range(RUNS)]
    agent = start_agent(server, env={"AGENT__AGENT__MONITOR_INTERVAL": "5", "AGENT__AGENT__MAX_WORKERS": str(WORKERS)})
    samples: list[tuple[int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(descendants(agent.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        states = [wait_for_state(client, run["id"], timeout=120, agent=agent)["state"]["type"] for run in runs]
    finally:
        done.set()
        sampler.join(5)

    assert states == ["Success"] * RUNS
    # Each run in flight is a supervisor and its workload; WORKERS deploy at a time. Without
    # prompt reaping, the zombies alone would climb towards RUNS between two monitor rounds.
    peak = max(count for count, _ in samples)
    peak_zombies = max(zombies for _, zombies in samples)
    assert peak_zombies <= 3, f"zombie supervisors piled up: {peak_zombies}"
    assert peak <= 4 * WORKERS + 4, f"the agent's process tree reached {peak} for {WORKERS} deploy workers"
