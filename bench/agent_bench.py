"""Agent benchmarks with real processes: pickup latency, idle cost, local-run throughput.

    .venv/bin/python -m bench.agent_bench [--samples 40] [--runs 500] [--idle-seconds 180]
        [--no-postgres] [--json bench/results/agent_bench.json]

Every figure is printed beside its floor measured in the same run, and the ratio to it:

- floors: a loopback ``GET /api/hello`` round trip to the API server (p50/p99), and
  ``Popen(['true']).wait()`` (p50, and the starts per second that makes).
- **pickup latency, no poke** (issue 9: p50 <= 50 ms, p99 <= 250 ms): an idle agent long-polls
  (``POST /api/queue`` with ``wait_seconds``, held by the server until a run is ready); a run
  is created through the API; created -> Submitted by the API's own timestamps. Two agents,
  each with its own label, sample in parallel, with a random pause between samples so that
  the run lands at any point of the agent's long poll.
- **pickup latency through another server** (p50 <= 100 ms): on PostgreSQL, two ``agent server
  start`` processes on one database; the agent waits on server B, the run is created through
  server A (B learns of it by ``LISTEN/NOTIFY``). Skipped without PostgreSQL (``bench/pg.py``).
- **pickup latency with a poke** (``POST /api/poke`` on the agent right after the create).
- **idle agent requests per minute** (<= 3): an agent with no work on a server of its own for
  ``--idle-seconds``; every request it sends is counted from the server's ``/metrics``
  (``agent_api_requests_total``, the scrapes themselves left out), with its CPU% and RSS.
- **throughput** (>= 80 runs/s): ``--runs`` runs of ``true``, all due before one agent with
  the default settings starts; first claim -> last final state by the API's timestamps.
- **process tree during those runs** (<= runs in flight + a few): ``/proc`` sampled every
  50 ms for the agent's descendants, beside the runs it has in flight (its ``/api/health``:
  runs on deploy threads plus runs monitored).

The throughput figure also gives the CPU each run cost (agent, supervisor and workload, the API
server: ``agent server start`` in a process of its own) and the runs per second that would make if every core were the
bench's: on a machine shared with other work the measured rate is what was left over.

``BENCH_PROFILE_DIR``: a directory put on the agents' ``PYTHONPATH`` (a ``sitecustomize.py``
there can profile them, e.g. with cProfile per thread). Figures go to ``--json`` (and into
``run_all.json`` via ``bench/run_all.py``). Everything is bounded: each wait has a timeout,
every process started is ended by its PID.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pendulum
import requests

from agent_core.client import APIClient
from agent_core.server.serve import open_store
from agent_core.server.storage.store import Store
from agent_core.testing.harness import free_loopback_port
from agent_core.testing.servers import APIServer
from bench.pg import PostgresUnavailable, fresh_database, postgres_server
from bench.queue_bench import server_process, server_process_with_pid
from bench.targets import Target, hello_round_trips, print_targets

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
FINAL = ("Success", "Failed", "Cancelled")


# --- processes -------------------------------------------------------------------------------


@dataclass
class AgentProc:
    proc: subprocess.Popen[bytes]
    name: str
    home: Path
    log: Path
    port: int | None

    def poke(self) -> None:
        requests.post(f"http://127.0.0.1:{self.port}/api/poke", timeout=5).raise_for_status()

    def health(self) -> dict[str, Any]:
        return requests.get(f"http://127.0.0.1:{self.port}/api/health", timeout=5).json()

    def wait_ready(self, timeout: float = 60.0) -> None:
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
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        end_workloads(self.home)


def start_agent(api_url: str, workdir: Path, name: str, *args: str, health: bool = True) -> AgentProc:
    """``agent start --backend local`` with the default settings (plus ``args``)."""
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    port = free_loopback_port() if health else None
    command = [sys.executable, "-m", "agent_core.cli.main", "start", "--backend", "local"]
    command += ["--api", api_url, "--name", name, *args]
    if port is not None:
        command += ["--agent-address", f"http://127.0.0.1:{port}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env.update(AGENT_HOME=str(home), PYTHONUNBUFFERED="1")
    if os.environ.get("BENCH_PROFILE_DIR"):
        env["PYTHONPATH"] = os.environ["BENCH_PROFILE_DIR"]
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    return AgentProc(proc, name, home, log, port)


def end_workloads(home: Path) -> None:
    """End the local supervisors an agent left behind (by the pids in its run directories)."""
    for pid_file in (home / "local-runs").glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if b"agent_plugin_local" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


def descendants(pid: int) -> int:
    """How many processes descend from ``pid`` now (zombies included: they are in the tree).

    Walks ``/proc/PID/task/TID/children`` down from ``pid``: it reads only the tree's own
    entries, where a scan of every ``/proc/*/stat`` on a busy machine cost tens of ms of the
    CPU the agent is being measured on.
    """
    count, todo = 0, [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue  # it exited meanwhile
        for task in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            count += len(children)
            todo.extend(int(child) for child in children)
    return count


# --- measurements ----------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def hello_floor(url: str, samples: int = 200) -> dict[str, float]:
    """A loopback ``GET /api/hello`` round trip, in ms."""
    times = hello_round_trips(url, samples)
    return {"p50_ms": statistics.median(times), "p99_ms": percentile(times, 99)}


def popen_floor(samples: int = 200) -> dict[str, float]:
    """``Popen(['true']).wait()`` in ms, and the starts per second one after another."""
    times = []
    started_all = time.perf_counter()
    for _ in range(samples):
        started = time.perf_counter()
        subprocess.Popen(["true"]).wait()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": statistics.median(times), "per_second": samples / (time.perf_counter() - started_all)}


def submitted_latency(client: APIClient, run: dict[str, Any], timeout: float = 60.0) -> float:
    """Seconds from the run's creation to its Submitted state, by the API's timestamps."""
    deadline = time.monotonic() + timeout
    created = pendulum.parse(run["created"])
    while time.monotonic() < deadline:
        submitted = next((s for s in client.flow_run_states(run["id"]) if s["type"] == "Submitted"), None)
        if submitted is not None:
            return (pendulum.parse(submitted["timestamp"]) - created).total_seconds()
        time.sleep(0.01)
    raise RuntimeError(f"run {run['id']} was not claimed within {timeout:g}s")


def sample_pickup(
    creator: APIClient, flow_id: str, agent: AgentProc, samples: int, out: list[float], *, poke: bool = False
) -> None:
    for _ in range(samples):
        # Any phase of the agent's long poll (30 s): the wait is event-driven, the phase must not matter.
        time.sleep(random.uniform(0.3, 1.5))
        run = creator.create_flow_run(flow_id=flow_id, labels=[agent.name])
        if poke:
            agent.poke()
        out.append(submitted_latency(creator, run))


def in_parallel(target: Callable[..., None], jobs: list[tuple[Any, ...]]) -> None:
    errors: list[BaseException] = []

    def run(*job: Any) -> None:
        try:
            target(*job)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=job, daemon=True) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(900)
    if errors:
        raise errors[0]


def pickup(
    api_url: str,
    workdir: Path,
    key: str,
    samples: int,
    *,
    agents: int = 2,
    poke: bool = False,
    create_url: str | None = None,
) -> list[float]:
    """Pickup latencies of ``agents`` idle agents waiting on ``api_url``, runs created through ``create_url``."""
    creator = APIClient(create_url or api_url, retries=0)
    procs = [start_agent(api_url, workdir, f"{key}-{n}", "--label", f"{key}-{n}") for n in range(agents)]
    try:
        flows = [creator.register_flow(f"{p.name}-flow", "true", labels=[p.name]) for p in procs]
        for proc in procs:
            proc.wait_ready()
        time.sleep(1.0)  # past the start-up polls: the agents are in their long poll
        out: list[float] = []
        per_agent = max(1, samples // agents)
        jobs = [(creator, f["id"], p, per_agent, out) for f, p in zip(flows, procs, strict=True)]
        in_parallel(functools.partial(sample_pickup, poke=poke), jobs)
        return out
    finally:
        for proc in procs:
            proc.end()
        creator.close()


def metric_total(url: str, name: str, skip_route: str = "/metrics") -> float:
    total = 0.0
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and f'route="{skip_route}"' not in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def idle_cost(workdir: Path, seconds: float) -> dict[str, float]:
    """Requests per minute, CPU% and RSS of an idle agent alone on a server of its own."""
    with APIServer(f"sqlite:///{workdir / 'idle.db'}") as server:
        agent = start_agent(server.url, workdir, "idle", "--label", "idle", health=False)
        try:
            agent.wait_ready()
            time.sleep(2.0)  # past registration and the first polls
            before, cpu_before, started = (
                metric_total(server.url, "agent_api_requests_total"),
                cpu_seconds(agent.proc.pid),
                time.monotonic(),
            )
            time.sleep(seconds)
            requests_ = metric_total(server.url, "agent_api_requests_total") - before
            elapsed = time.monotonic() - started
            cpu = 100 * (cpu_seconds(agent.proc.pid) - cpu_before) / elapsed
            rss = rss_mib(agent.proc.pid)
        finally:
            agent.end()
    return {
        "requests": requests_,
        "seconds": elapsed,
        "per_minute": requests_ * 60 / elapsed,
        "cpu_percent": cpu,
        "rss_mib": rss,
    }


@dataclass
class Throughput:
    runs_per_second: float = 0.0  # first claim -> last final state, by the API's timestamps
    seconds: float = 0.0
    claims_per_second: float = 0.0  # first claim -> last claim
    final: int = 0
    not_success: int = 0
    max_tree: int = 0  # the agent's descendants, at most
    max_in_flight: int = 0
    max_excess: int = 0  # descendants beyond the runs in flight, at most
    samples: int = 0
    agent_cpu_ms_per_run: float = 0.0
    children_cpu_ms_per_run: float = 0.0
    # The API server's process, from the agent's start to its end.
    server_cpu_ms_per_run: float = 0.0
    errors: list[str] = field(default_factory=list)


def throughput(workdir: Path, runs: int) -> Throughput:
    """``runs`` runs of ``true``, all due before the agent starts; one agent with the default settings.

    The API server is ``agent server start`` in a process of its own, as an operator runs it: in
    this process it would share one interpreter lock with the bench's own sampling and polling,
    and the figure would be the bench's. Completion is read from the database file directly (a
    second reader on SQLite's WAL), so watching costs the server nothing.
    """
    db_url = f"sqlite:///{workdir / 'throughput.db'}"
    with server_process_with_pid(db_url, workdir) as (url, server_pid):
        store = open_store(db_url)
        try:
            return _throughput(url, server_pid, store, workdir, runs)
        finally:
            store.engine.dispose()


def _throughput(url: str, server_pid: int, store: Store, workdir: Path, runs: int) -> Throughput:
    client = APIClient(url)
    flow = client.register_flow("bench-true", "true")
    created = [client.create_flow_run(flow_id=flow["id"])["id"] for _ in range(runs)]
    agent = start_agent(url, workdir, "bench-throughput")
    result = Throughput()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, ValueError, requests.RequestException):
                tree = descendants(agent.proc.pid)
                health = agent.health()
                in_flight = int(health["in_flight"]) + int(health["monitored"])
                result.max_tree = max(result.max_tree, tree)
                result.max_in_flight = max(result.max_in_flight, in_flight)
                result.max_excess = max(result.max_excess, tree - in_flight)
                result.samples += 1
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    try:
        agent.wait_ready()
        server_before = cpu_seconds(server_pid)
        sampler.start()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            by_state = store.count_runs_by_state()
            if sum(by_state.get(state, 0) for state in FINAL) >= runs:
                break
            time.sleep(0.25)
        stop.set()
        sampler.join(10)
        fields = Path(f"/proc/{agent.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        result.agent_cpu_ms_per_run = (int(fields[11]) + int(fields[12])) / CLK_TCK * 1000 / runs
        result.children_cpu_ms_per_run = (int(fields[13]) + int(fields[14])) / CLK_TCK * 1000 / runs
        result.server_cpu_ms_per_run = (cpu_seconds(server_pid) - server_before) * 1000 / runs
    finally:
        stop.set()
        agent.end()
    final = client.list_flow_runs(limit=runs + 1, states=list(FINAL))
    claims, ends = [], []
    for run_id in created:
        for state in store.state_history(store.ensure_tenant(), run_id):
            if state["type"] == "Submitted":
                claims.append(pendulum.parse(state["timestamp"]))
            elif state["type"] in FINAL:
                ends.append(pendulum.parse(state["timestamp"]))
    result.final = len(ends)
    result.not_success = sum(1 for r in final if r["state"]["type"] != "Success")
    if len(ends) < runs or result.not_success:
        result.errors.append(f"{len(ends)}/{runs} final, {result.not_success} not Success")
    if ends and claims:
        result.seconds = (max(ends) - min(claims)).total_seconds()
        result.runs_per_second = len(ends) / result.seconds
        claim_span = (max(claims) - min(claims)).total_seconds()
        result.claims_per_second = len(claims) / claim_span if claim_span else float("inf")
    return result


# --- main ------------------------------------------------------------------------------------


def latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50_ms": percentile(values, 50) * 1000,
        "p90_ms": percentile(values, 90) * 1000,
        "p99_ms": percentile(values, 99) * 1000,
        "max_ms": max(values) * 1000,
    }


def two_servers(workdir: Path, samples: int, notes: list[str]) -> tuple[dict[str, float], dict[str, float]] | None:
    """(pickup latency, floor) with the agent waiting on server B and runs created through A."""
    try:
        with postgres_server() as server_url, fresh_database(server_url) as db:
            if not os.environ.get("AGENT_BENCH_POSTGRES_URL"):
                notes.append("postgres is a private local cluster with fsync=off, synchronous_commit=off")
            with server_process(db, workdir) as a, server_process(db, workdir) as b:
                floor = hello_floor(b)
                latencies = pickup(b, workdir, "two-servers", samples, create_url=a)
                return latency_summary(latencies), floor
    except PostgresUnavailable as exc:
        notes.append(f"two-server pickup skipped: {exc}")
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=40, help="pickup latencies per figure (over 2 agents)")
    parser.add_argument("--poke-samples", type=int, default=10)
    parser.add_argument("--runs", type=int, default=500, help="trivial runs for the throughput figure")
    parser.add_argument("--idle-seconds", type=float, default=180.0, help="window of the idle agent's figures")
    parser.add_argument("--no-postgres", action="store_true", help="skip the two-server pickup figure")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "agent_bench.json")
    args = parser.parse_args(argv)
    logging.getLogger("waitress").setLevel(logging.ERROR)  # "Task queue depth" warnings of the API server

    notes: list[str] = []
    load_before = os.getloadavg()
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
        workdir = Path(tmp)
        # The idle agent has a server of its own and runs beside the other phases (it sends
        # the same requests however busy the machine is).
        idle: dict[str, float] = {}
        idle_thread = threading.Thread(target=lambda: idle.update(idle_cost(workdir, args.idle_seconds)), daemon=True)
        idle_thread.start()
        with APIServer(f"sqlite:///{workdir / 'bench.db'}") as server:
            figures["floor_hello"] = hello_floor(server.url)
            figures["floor_popen"] = popen_floor()
            print(f"sampling pickup latency without poke ({args.samples} samples)...", file=sys.stderr)
            figures["pickup"] = latency_summary(pickup(server.url, workdir, "pickup", args.samples))
            print(f"sampling pickup latency with poke ({args.poke_samples} samples)...", file=sys.stderr)
            figures["pickup_poke"] = latency_summary(pickup(server.url, workdir, "poke", args.poke_samples, poke=True))
        if not args.no_postgres:
            print("sampling pickup latency through a second server (PostgreSQL)...", file=sys.stderr)
            found = two_servers(workdir, args.samples, notes)
            if found is not None:
                figures["pickup_two_servers"], figures["floor_hello_server_b"] = found
        print(f"running {args.runs} trivial local runs...", file=sys.stderr)
        result = throughput(workdir, args.runs)
        figures["throughput"] = result.__dict__
        print(f"waiting for the idle agent's {args.idle_seconds:g} s window...", file=sys.stderr)
        idle_thread.join(args.idle_seconds + 120)
        figures["idle"] = idle

    hello, popen = figures["floor_hello"], figures["floor_popen"]
    targets: list[Target] = []
    pick = figures["pickup"]
    targets.append(Target.latency("idle agent, no poke: created -> claimed, p50", pick["p50_ms"], 50, hello["p50_ms"]))
    targets.append(Target.latency("idle agent, no poke: created -> claimed, p99", pick["p99_ms"], 250, hello["p50_ms"]))
    if "pickup_two_servers" in figures:
        two, floor_b = figures["pickup_two_servers"], figures["floor_hello_server_b"]
        targets.append(
            Target.latency(
                "same, created on server A, agent waits on B (PostgreSQL), p50", two["p50_ms"], 100, floor_b["p50_ms"]
            )
        )
    poke = figures["pickup_poke"]
    targets.append(
        Target.latency("idle agent, poke: created -> claimed, p50 (no target)", poke["p50_ms"], None, hello["p50_ms"])
    )
    targets.append(
        Target(
            f"idle agent: HTTP requests per minute ({idle.get('seconds', 0):.0f} s window)",
            idle.get("per_minute"),
            "/min",
            3.0,
            "max",
            floor=None,
            floor_text="-",
        )
    )
    cpu_per_run = result.agent_cpu_ms_per_run + result.children_cpu_ms_per_run + result.server_cpu_ms_per_run
    per_run_ms = 1000 / result.runs_per_second if result.runs_per_second else None
    targets.append(
        Target(
            f"local runs/s end to end, {args.runs} x `true`",
            result.runs_per_second,
            "runs/s",
            80.0,
            "min",
            floor=popen["per_second"],
            floor_text=f"Popen(['true']) {popen['p50_ms']:.2f} ms = {popen['per_second']:.0f}/s",
            ratio=per_run_ms / popen["p50_ms"] if per_run_ms else None,
            ratio_text="x floor per run",
            extra=f"CPU {cpu_per_run:.0f} ms/run: {1000 * (os.cpu_count() or 1) / cpu_per_run:.0f}/s on free cores"
            if cpu_per_run
            else "",
        )
    )
    targets.append(
        Target(
            f"process tree during those runs (max; in flight at most {result.max_in_flight})",
            result.max_tree,
            "procs",
            result.max_in_flight + 5,
            "max",
            floor=None,
            floor_text="in flight + 5",
            extra=f"beyond in flight: max {result.max_excess} ({result.samples} samples)",
        )
    )
    load_after = os.getloadavg()
    print(f"agent bench: python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    for note in notes:
        print(f"note: {note}")
    print(
        f"floor: GET /api/hello p50 {hello['p50_ms']:.2f} ms, p99 {hello['p99_ms']:.2f} ms; "
        f"Popen(['true']) p50 {popen['p50_ms']:.2f} ms ({popen['per_second']:.0f}/s)"
    )
    for name in ("pickup", "pickup_two_servers", "pickup_poke"):
        if figures.get(name):
            f = figures[name]
            print(
                f"{name}: p50 {f['p50_ms']:.1f} ms, p90 {f['p90_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms, "
                f"max {f['max_ms']:.1f} ms (n={f['n']})"
            )
    print(
        f"CPU per run, all parts: {cpu_per_run:.1f} ms (API server {result.server_cpu_ms_per_run:.1f} ms):"
        f" at most {1000 * (os.cpu_count() or 1) / cpu_per_run:.0f} runs/s if every core were the bench's"
        if cpu_per_run
        else "CPU per run: not measured"
    )
    print(
        f"throughput: {result.runs_per_second:.1f} runs/s over {result.seconds:.1f} s, claims "
        f"{result.claims_per_second:.0f}/s; CPU per run: agent {result.agent_cpu_ms_per_run:.1f} ms, "
        f"supervisor+workload {result.children_cpu_ms_per_run:.1f} ms"
    )
    if idle:
        print(
            f"idle agent: {idle['requests']:.0f} requests in {idle['seconds']:.0f} s, CPU {idle['cpu_percent']:.2f} %"
            f", RSS {idle['rss_mib']:.1f} MiB"
        )
    for error in result.errors:
        print(f"ERROR throughput: {error}")
    print()
    print_targets(targets)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "bench": "agent",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": [load_before[0], load_after[0]],
                "notes": notes,
                "figures": figures,
                "targets": [t.to_dict() for t in targets],
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    print(f"\nfigures written to {args.json}")
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
