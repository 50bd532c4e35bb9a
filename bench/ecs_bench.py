"""ECS backend benchmark on moto: AWS calls per run, and runs per second end to end.

A moto server (started here, on loopback), a real API server (SQLite, loopback) and a real ecs
agent in this process. The tasks' containers run as local processes (the test suite's
``TaskRuntime``: moto runs nothing), each echoing one line into its CloudWatch stream. A burst
of runs of one flow is created while the agent idles, then it is poked. Prints:

- runs per second, first run created to last run final;
- AWS calls per run by operation: RegisterTaskDefinition, RunTask, DescribeTasks,
  GetLogEvents (and every other call the agent made), and DescribeTasks per monitor tick;
- the same burst over as many flows (one definition each), for the registration cost.

Usage: ``python bench/ecs_bench.py [--runs 30] [--flows 5]``. Needs moto_server next to this
Python (``pip install moto[server]``, in the dev tools).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, free_loopback_port, wait_until
from agent_core.testing.servers import APIServer

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: the workspace root holds `tests`

from tests.plugins.ecs.runtime import TaskRuntime  # noqa: E402

TEMPLATE = "containerDefinitions:\n  - name: flow\n    memoryReservation: 64\n"


@contextlib.contextmanager
def moto() -> Iterator[str]:
    script = Path(sys.executable).with_name("moto_server")
    if not script.is_file():
        raise SystemExit(f"moto_server is not installed next to {sys.executable}: pip install 'moto[server]'")
    port = free_loopback_port()
    endpoint = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).read()
        except OSError:
            return False
        return True

    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([str(script), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_until(up, 30, 0.1):
                raise SystemExit("moto_server did not answer within 30 s")
            yield endpoint
        finally:
            proc.terminate()
            proc.wait(20)


def burst(client: APIClient, agent: AgentThread, flows: list[str], runs: int) -> tuple[float, list[dict]]:
    created = [client.create_flow_run(flow_name=flows[n % len(flows)]) for n in range(runs)]
    start = time.monotonic()
    agent.agent.poke()

    def finals() -> list[dict] | None:
        found = [client.get_flow_run(r["id"]) for r in created]
        return found if all(f["state"]["type"] in ("Success", "Failed", "Cancelled") for f in found) else None

    done = wait_until(finals, 300, 0.2)
    if done is None:
        raise SystemExit("the runs did not finish within 300 s")
    return time.monotonic() - start, done


def report(title: str, runs: int, seconds: float, finals: list[dict], calls: Counter[str], ticks: int) -> None:
    states = Counter(f["state"]["type"] for f in finals)
    print(f"\n{title}: {runs} runs in {seconds:.1f} s = {runs / seconds:.1f} runs/s ({dict(states)})")
    for op in ("RegisterTaskDefinition", "RunTask", "DescribeTasks", "GetLogEvents"):
        print(f"  {op:<24} {calls[op]:>5} calls  {calls[op] / runs:6.2f} per run")
    others = {
        op: n
        for op, n in calls.items()
        if op not in ("RegisterTaskDefinition", "RunTask", "DescribeTasks", "GetLogEvents")
    }
    if others:
        print("  other calls: " + ", ".join(f"{op} {n}" for op, n in sorted(others.items())))
    if ticks:
        print(f"  DescribeTasks per snapshot refresh: {calls['DescribeTasks'] / ticks:.2f} ({ticks} refreshes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--flows", type=int, default=5)
    args = parser.parse_args()
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1"
    )
    with moto() as endpoint, tempfile.TemporaryDirectory() as tmp:
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        cluster, group = f"bench-{uuid.uuid4().hex[:6]}", "/agent-bench"
        boto3.client("ecs").create_cluster(clusterName=cluster)
        boto3.client("logs").create_log_group(logGroupName=group)
        template = Path(tmp) / "td.yaml"
        template.write_text(TEMPLATE)
        settings = {
            "endpoint_url": endpoint,
            "cluster": cluster,
            "image": "busybox:latest",
            "execution_role_arn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
            "log_group": group,
            "task_definition_template": str(template),
            "state_dir": str(Path(tmp) / "state"),
        }
        with APIServer(f"sqlite:///{tmp}/bench.db") as server, TaskRuntime(endpoint, cluster, poll=0.05):
            client = server.client()
            one = [client.register_flow("bench-one", "echo bench")["name"]]
            many = [client.register_flow(f"bench-{n}", "echo bench")["name"] for n in range(args.flows)]
            agent = AgentThread(server.url, "ecs", name="ecs-bench", backend_settings=settings, monitor_interval=0.5)
            agent.agent.load_backend_contract()
            from agent_plugin_ecs.state import state_of

            st = state_of(agent.agent)
            calls: list[str] = []
            st.clients.observers.append(lambda service, op: calls.append(op))
            with agent:
                for title, flows in ((f"one flow ({args.runs} runs)", one), (f"{args.flows} flows", many)):
                    calls.clear()
                    before = st.tracker.generation
                    seconds, finals = burst(client, agent, flows, args.runs)
                    report(title, args.runs, seconds, finals, Counter(calls), st.tracker.generation - before)
            print(f"\nregistrations waited for the rate budget: {st.budget.waited:.1f} s in total")


if __name__ == "__main__":
    main()
