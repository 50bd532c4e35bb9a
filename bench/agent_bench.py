"""Agent benchmarks with real processes: pickup latency, local-run throughput, idle cost.

    .venv/bin/python bench/agent_bench.py [--idle-samples-per-agent 2] [--latency-agents 4]
        [--poke-samples-per-agent 6] [--runs 500] [--idle-seconds 10] [--db URL]

What it prints:

- **pickup latency** (run created -> Submitted, from the API's own timestamps) of an idle agent
  whose backoff has reached its 10 s cap, without a poke and with ``POST /api/poke`` sent right
  after the run is created. Several agents, each with its own label, take samples in parallel
  so that the slow no-poke samples fit in about a minute.
- **throughput**: ``--runs`` trivial local runs (``true``) created at once, one agent with the
  default settings: runs per second from the poke to the last final state.
- **idle cost**: CPU% and RSS of an idle agent, from ``/proc/PID/stat`` and ``/proc/PID/status``
  over ``--idle-seconds``.

Everything is bounded: each wait has a timeout, every process started is ended by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pendulum
import requests

from agent_core.testing.servers import APIServer

BACKOFF_TO_CAP = 0.25 + 0.5 + 1 + 2 + 4 + 8  # seconds of idling until the poll delay is 10 s
POLL_CAP = 10.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AgentProc:
    proc: subprocess.Popen[bytes]
    name: str
    home: Path
    log: Path
    port: int | None

    def poke(self) -> None:
        requests.post(f"http://127.0.0.1:{self.port}/api/poke", timeout=5).raise_for_status()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Waiting for flow runs..." in self.log.read_text(errors="replace"):
                if self.port is None:
                    return
                with contextlib.suppress(requests.ConnectionError):
                    requests.get(f"http://127.0.0.1:{self.port}/api/health", timeout=2)
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"agent {self.name} exited:\n{self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"agent {self.name} did not start within {timeout:g}s")

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_agent(server: APIServer, workdir: Path, name: str, *args: str, health: bool = True) -> AgentProc:
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    port = free_port() if health else None
    command = [sys.executable, "-m", "agent_core.cli.main", "start", "--backend", "local"]
    command += ["--api", server.url, "--name", name, *args]
    if port is not None:
        command += ["--agent-address", f"http://127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT__")}
    env.update(AGENT_HOME=str(home), PYTHONUNBUFFERED="1")
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return AgentProc(proc, name, home, log, port)


def end_workloads(home: Path) -> None:
    """End the local supervisors an agent left behind (by the pids in its run directories)."""
    for pid_file in (home / "local-runs").glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if b"agent_plugin_local.supervisor" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


# --- measurements ----------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def submitted_latency(server: APIServer, tenant: str, run_id: str, timeout: float = 30.0) -> float:
    """Seconds from the run's creation to its Submitted state, by the API's timestamps."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = server.store.state_history(tenant, run_id)
        submitted = next((s for s in history if s["type"] == "Submitted"), None)
        if submitted is not None:
            created = pendulum.parse(server.store.get_run(tenant, run_id)["created"])
            return (pendulum.parse(submitted["timestamp"]) - created).total_seconds()
        time.sleep(0.005)
    raise RuntimeError(f"run {run_id} was not claimed within {timeout:g}s")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """CPU seconds used by ``pid`` itself, or (``children``) by its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # utime, stime / cutime, cstime
    return (int(fields[first]) + int(fields[first + 1])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_cost(pid: int, seconds: float) -> tuple[float, float]:
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    used, elapsed = cpu_seconds(pid) - before, time.monotonic() - start
    return 100 * used / elapsed, rss_mib(pid)  # /proc counts in 1/CLK_TCK s: 0.1 % resolution over 10 s


# --- phases ----------------------------------------------------------------------------------


def latency_without_poke(
    server: APIServer, tenant: str, flow_id: str, agent: AgentProc, label: str, samples: int, out: list[float]
) -> None:
    for _ in range(samples):
        # Idle long enough for the backoff to reach its cap, then a random phase within a poll period.
        time.sleep(BACKOFF_TO_CAP + 0.5 + random.uniform(0, POLL_CAP))
        run, _ = server.store.create_run(tenant, {"flow_id": flow_id, "labels": [label]})
        out.append(submitted_latency(server, tenant, run["id"], timeout=POLL_CAP + 20))


def latency_with_poke(
    server: APIServer, tenant: str, flow_id: str, agent: AgentProc, label: str, samples: int, out: list[float]
) -> None:
    for _ in range(samples):
        time.sleep(random.uniform(1.0, 2.5))
        run, _ = server.store.create_run(tenant, {"flow_id": flow_id, "labels": [label]})
        agent.poke()
        out.append(submitted_latency(server, tenant, run["id"]))


def in_parallel(target, jobs: list[tuple]) -> None:
    threads = [threading.Thread(target=target, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)


@dataclass
class Throughput:
    runs_per_second: float  # first claim -> last final state, by the API's timestamps
    seconds: float
    claims_per_second: float  # first claim -> last claim
    agent_cpu_ms_per_run: float  # the agent process itself
    children_cpu_ms_per_run: float  # the supervisors and their workloads


def throughput(server: APIServer, tenant: str, workdir: Path, runs: int) -> Throughput:
    """``runs`` runs of ``true``, all due before the agent starts; one agent with the default settings."""
    flow = server.store.register_flow(tenant, {"name": "bench-true", "command": "true"})[0]
    created = [server.store.create_run(tenant, {"flow_id": flow["id"]})[0]["id"] for _ in range(runs)]
    agent = start_agent(server, workdir, "bench-throughput")
    try:
        agent.wait_ready()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            final, _ = server.store.list_runs(
                tenant, limit=runs + 1, states=["Success", "Failed", "Cancelled"], flow="bench-true"
            )
            if len(final) >= runs:
                break
            time.sleep(0.25)
        time.sleep(2)  # the monitor waits for the last supervisors
        own = cpu_seconds(agent.proc.pid) * 1000 / runs
        children = cpu_seconds(agent.proc.pid, children=True) * 1000 / runs
    finally:
        agent.end()
        end_workloads(agent.home)
    claims, ends = [], []
    for run_id in created:
        for state in server.store.state_history(tenant, run_id):
            if state["type"] == "Submitted":
                claims.append(pendulum.parse(state["timestamp"]))
            elif state["type"] in ("Success", "Failed", "Cancelled"):
                ends.append(pendulum.parse(state["timestamp"]))
    failed = [r for r in final if r["state"]["type"] != "Success"]
    if len(ends) < runs or failed:
        print(f"warning: {len(ends)}/{runs} final, {len(failed)} not Success", file=sys.stderr)
    span = (max(ends) - min(claims)).total_seconds()
    claim_span = (max(claims) - min(claims)).total_seconds()
    return Throughput(len(ends) / span, span, len(claims) / claim_span, own, children)


# --- main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def api_server(db_url: str | None, workdir: Path) -> Iterator[APIServer]:
    with APIServer(db_url or f"sqlite:///{workdir / 'bench.db'}") as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-agents", type=int, default=4, help="agents sampling pickup latency in parallel")
    parser.add_argument("--idle-samples-per-agent", type=int, default=2, help="no-poke samples per agent (~25 s each)")
    parser.add_argument("--poke-samples-per-agent", type=int, default=6)
    parser.add_argument("--runs", type=int, default=500, help="trivial runs for the throughput figure")
    parser.add_argument("--idle-seconds", type=float, default=10.0, help="window of the idle CPU/RSS reading")
    parser.add_argument("--db", default=None, help="database URL of the API server (default: a SQLite file)")
    args = parser.parse_args(argv)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth" warnings of the API server

    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp, api_server(args.db, Path(tmp)) as server:
        workdir = Path(tmp)
        tenant = server.store.ensure_tenant("default")
        flow = server.store.register_flow(tenant, {"name": "bench-pickup", "command": "true"})[0]
        labels = [f"bench-{n}" for n in range(args.latency_agents)]
        agents = [start_agent(server, workdir, label, "--label", label) for label in labels]
        idle = start_agent(server, workdir, "bench-idle", "--label", "bench-idle", health=False)
        try:
            for agent in [*agents, idle]:
                agent.wait_ready()
            started = time.monotonic()
            print(
                f"sampling pickup latency without poke: {args.latency_agents} agents x "
                f"{args.idle_samples_per_agent} samples (~{26 * args.idle_samples_per_agent:.0f} s)...",
                file=sys.stderr,
            )
            no_poke: list[float] = []
            jobs = [(server, tenant, flow["id"], a, a.name, args.idle_samples_per_agent, no_poke) for a in agents]
            sampler = threading.Thread(target=in_parallel, args=(latency_without_poke, jobs), daemon=True)
            sampler.start()
            # Meanwhile, the idle agent's cost once its backoff is at the cap.
            time.sleep(max(0.0, BACKOFF_TO_CAP + 0.5 - (time.monotonic() - started)))
            cpu_pct, rss = idle_cost(idle.proc.pid, args.idle_seconds)
            sampler.join(900)

            print("sampling pickup latency with poke...", file=sys.stderr)
            poked: list[float] = []
            jobs = [(server, tenant, flow["id"], a, a.name, args.poke_samples_per_agent, poked) for a in agents]
            in_parallel(latency_with_poke, jobs)
        finally:
            for agent in [*agents, idle]:
                agent.end()
                end_workloads(agent.home)

        print(f"running {args.runs} trivial local runs...", file=sys.stderr)
        result = throughput(server, tenant, workdir, args.runs)

    def latency_row(values: list[float]) -> str:
        if not values:
            return "no samples"
        p50, p90, p99 = (percentile(values, p) * 1000 for p in (50, 90, 99))
        return f"p50 {p50:7.0f} ms   p90 {p90:7.0f} ms   p99 {p99:7.0f} ms   (n={len(values)})"

    rows = [
        ("pickup latency, idle agent, no poke", latency_row(no_poke)),
        ("pickup latency, idle agent, poke", latency_row(poked)),
        (
            f"throughput, {args.runs} x `true`",
            f"{result.runs_per_second:.1f} runs/s ({result.seconds:.1f} s; claims {result.claims_per_second:.0f}/s)",
        ),
        (
            "CPU per run",
            f"agent {result.agent_cpu_ms_per_run:.0f} ms, supervisor+workload {result.children_cpu_ms_per_run:.0f} ms",
        ),
        (f"idle agent CPU ({args.idle_seconds:g} s window)", f"{cpu_pct:.2f} % (ticks of {1000 / CLK_TCK:.0f} ms)"),
        ("idle agent RSS", f"{rss:.1f} MiB"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 60}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
