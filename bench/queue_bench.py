"""The queue's hot paths over HTTP: claims per second and long-poll wake latency.

Each API server is a real ``agent server start`` process on loopback (so the clients of this
process do not share its interpreter); PostgreSQL is ``AGENT_BENCH_POSTGRES_URL`` or a
throw-away local cluster. Figures, each with its floor (a loopback ``GET /api/hello`` round
trip to the same server):

- claims/s: N agents (threads, each its own client and registered agent) claim
  (``POST /api/queue`` with ``claim: true``, limit 10) until the queue is empty; every run must
  be claimed exactly once (counted from the answers and from the state history). Targets:
  10 agents on PostgreSQL ≥ 1,000/s, 4 agents on SQLite ≥ 500/s, 0 duplicates.
- wake latency: an idle agent long-polls (``wait_seconds`` 30, ``claim``); a run is created;
  created → answered, p50/p99. On one server (SQLite and PostgreSQL), and across two servers
  on one PostgreSQL (waiting on B, created through A).
- ordinary requests beside idle agents: p50/p99 of ``GET /api/flow-runs/{id}`` with no long
  poll waiting, then with 50 idle agents long-polling the same server (each for labels no run
  has). Target: the same figures, since waiting requests have threads of their own.

    python -m bench.queue_bench [--runs 3000] [--samples 50] [--ordinary 300] [--only sqlite|postgres]
        [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pendulum
import requests
import sqlalchemy as sa

from agent_core.client import APIClient
from agent_core.server.storage import make_engine
from agent_core.testing.harness import free_loopback_port
from bench.pg import PostgresUnavailable, fresh_database, postgres_server
from bench.targets import Target, hello_round_trips, print_targets

CLAIM_LIMIT = 10
IDLE_AGENTS = 50
TARGETS = {"sqlite": (4, 500.0), "postgres": (10, 1000.0)}


@dataclass
class Figures:
    name: str
    floor_ms_p50: float = 0.0
    floor_ms_p99: float = 0.0
    values: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@contextlib.contextmanager
def server_process(db_url: str, home: Path) -> Iterator[str]:
    """``agent server start`` on a free loopback port; yields its URL."""
    with server_process_with_pid(db_url, home) as (url, _pid):
        yield url


@contextlib.contextmanager
def server_process_with_pid(db_url: str, home: Path) -> Iterator[tuple[str, int]]:
    """``agent server start`` on a free loopback port; yields its URL and pid."""
    port = free_loopback_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
    env["AGENT_HOME"] = str(home)
    log = (home / f"server-{port}.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent_core.cli.main", "server", "start", "--port", str(port), "--db", db_url],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{url}/api/hello", timeout=1).ok:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer within 60 s")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def floor(url: str, figures: Figures, samples: int = 300) -> None:
    times = hello_round_trips(url, samples)
    figures.floor_ms_p50 = statistics.median(times)
    figures.floor_ms_p99 = percentile(times, 0.99)


def create_runs(db_url: str, count: int) -> set[str]:
    """``count`` due runs written straight into the database (the bench times claiming, not this)."""
    from agent_core.server.storage import Store

    store = Store(make_engine(db_url))
    try:
        store.register_flow("default", {"name": "bench", "command": "true"})
        return {store.create_run("default", {"flow_name": "bench"})[0]["id"] for _ in range(count)}
    finally:
        store.engine.dispose()


def bench_claims(url: str, db_url: str, agents: int, runs: int, figures: Figures) -> None:
    ids = create_runs(db_url, runs)
    admin = APIClient(url, retries=0)
    clients = []
    for n in range(agents):
        client = APIClient(url, retries=0)
        client.set_agent_id(admin.register_agent(name=f"claimer-{n}", backend="bench", labels=[])["id"])
        clients.append(client)
    won: list[list[str]] = [[] for _ in clients]
    barrier = threading.Barrier(agents + 1)

    def agent(n: int) -> None:
        barrier.wait(timeout=60)
        try:
            while True:
                items = clients[n].get_queue([], pendulum.now("UTC"), limit=CLAIM_LIMIT, claim=True)
                if not items:
                    return
                won[n] += [item["id"] for item in items if item["state"]["type"] == "Submitted"]
        except Exception as exc:
            figures.errors.append(f"agent {n}: {exc!r}")

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(agents)]
    for thread in threads:
        thread.start()
    barrier.wait(timeout=60)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    counts = Counter(run_id for ids_ in won for run_id in ids_)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        submitted = conn.execute(
            sa.text("SELECT flow_run_id, count(*) FROM flow_run_states WHERE state = 'Submitted' GROUP BY flow_run_id")
        ).all()
    engine.dispose()
    history_twice = sum(1 for _, n in submitted if n > 1)
    figures.values.update(
        {
            "claim_agents": agents,
            "claims": len(counts),
            "claims_per_second": len(counts) / seconds,
            "duplicates": sum(1 for n in counts.values() if n > 1) + history_twice,
            "unclaimed": len(ids - set(counts)),
        }
    )
    for client in [admin, *clients]:
        client.close()


def metric(url: str, name: str) -> float:
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def bench_wake(wait_url: str, create_url: str, samples: int, key: str, figures: Figures) -> None:
    """created → answered, ``samples`` times: one idle agent long-polls ``wait_url``."""
    creator = APIClient(create_url, retries=0)
    flow = creator.register_flow(f"wake-{key}", "true", labels=[key])
    agent = APIClient(wait_url, retries=0)
    agent.set_agent_id(creator.register_agent(name=f"idle-{key}", backend="bench", labels=[key])["id"])
    latencies = []
    for _ in range(samples):
        answered: dict[str, float] = {}

        def poll(answered: dict[str, float] = answered) -> None:
            items = agent.get_queue([key], pendulum.now("UTC"), limit=10, wait_seconds=30, claim=True)
            answered["at"] = time.perf_counter()
            answered["count"] = len(items)

        thread = threading.Thread(target=poll)
        thread.start()
        deadline = time.monotonic() + 10
        while metric(wait_url, "agent_api_long_polls_waiting") < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.02)
        created = time.perf_counter()
        creator.create_flow_run(flow_id=flow["id"], labels=[key])
        thread.join(40)
        if answered.get("count") != 1:
            figures.errors.append(f"wake {key}: answered with {answered.get('count')} runs")
            continue
        latencies.append((answered["at"] - created) * 1000)
    if latencies:
        figures.values[f"wake_{key}_ms_p50"] = statistics.median(latencies)
        figures.values[f"wake_{key}_ms_p99"] = percentile(latencies, 0.99)
    creator.close()
    agent.close()


def ordinary_latencies(client: APIClient, run_id: str, samples: int) -> list[float]:
    client.get_flow_run(run_id)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        client.get_flow_run(run_id)
        times.append((time.perf_counter() - started) * 1000)
    return times


def bench_idle_waiters(url: str, samples: int, figures: Figures) -> None:
    """An ordinary request's latency without long polls waiting, then with ``IDLE_AGENTS`` of them."""
    client = APIClient(url, retries=0)
    admin = APIClient(url, retries=0)
    flow = admin.register_flow("idle-waiters", "true")
    run_id = admin.create_flow_run(flow_id=flow["id"], labels=["ordinary"])["id"]
    quiet = ordinary_latencies(client, run_id, samples)
    waiters = [APIClient(url, retries=0) for _ in range(IDLE_AGENTS)]

    def wait(n: int) -> None:
        try:
            waiters[n].get_queue([f"idle-{n}"], pendulum.now("UTC"), limit=1, wait_seconds=30)
        except Exception as exc:
            figures.errors.append(f"idle waiter {n}: {exc!r}")

    threads = [threading.Thread(target=wait, args=(n,)) for n in range(IDLE_AGENTS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while metric(url, "agent_api_long_polls_waiting") < IDLE_AGENTS and time.monotonic() < deadline:
        time.sleep(0.05)
    waiting = metric(url, "agent_api_long_polls_waiting")
    busy = ordinary_latencies(client, run_id, samples)
    if metric(url, "agent_api_long_polls_waiting") < IDLE_AGENTS or waiting < IDLE_AGENTS:
        figures.errors.append(f"only {waiting:.0f} of {IDLE_AGENTS} idle agents were waiting")
    # One run per label ends each wait at once (the answer is that run, unclaimed).
    for n in range(IDLE_AGENTS):
        admin.create_flow_run(flow_id=flow["id"], labels=[f"idle-{n}"])
    for thread in threads:
        thread.join(40)
    figures.values.update(
        {
            "ordinary_ms_p50": statistics.median(quiet),
            "ordinary_ms_p99": percentile(quiet, 0.99),
            "ordinary_with_waiters_ms_p50": statistics.median(busy),
            "ordinary_with_waiters_ms_p99": percentile(busy, 0.99),
        }
    )
    for c in [client, admin, *waiters]:
        c.close()


def bench_sqlite(args: argparse.Namespace, home: Path) -> Figures:
    figures = Figures("sqlite")
    db = f"sqlite:///{home / 'bench.db'}"
    agents, _ = TARGETS["sqlite"]
    with server_process(db, home) as url:
        floor(url, figures)
        bench_claims(url, db, agents, args.runs, figures)
        bench_wake(url, url, args.samples, "one-server", figures)
        bench_idle_waiters(url, args.ordinary, figures)
    return figures


def bench_postgres(args: argparse.Namespace, home: Path, notes: list[str]) -> Figures | None:
    figures = Figures("postgres")
    agents, _ = TARGETS["postgres"]
    try:
        with postgres_server() as server_url, fresh_database(server_url) as db:
            if not os.environ.get("AGENT_BENCH_POSTGRES_URL"):
                notes.append("postgres is a private local cluster with fsync=off, synchronous_commit=off")
            with server_process(db, home) as a, server_process(db, home) as b:
                floor(a, figures)
                bench_claims(a, db, agents, args.runs, figures)
                bench_wake(a, a, args.samples, "one-server", figures)
                bench_wake(b, a, args.samples, "two-servers", figures)
                bench_idle_waiters(a, args.ordinary, figures)
    except PostgresUnavailable as exc:
        notes.append(f"postgres skipped: {exc}")
        return None
    return figures


def report(results: list[Figures], notes: list[str], args: argparse.Namespace) -> None:
    print(f"agent queue bench: python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"{args.runs} runs to claim (limit {CLAIM_LIMIT} per call), {args.samples} wake-ups per latency")
    for note in notes:
        print(f"note: {note}")
    for f in results:
        v = f.values
        floor_ = f"floor (GET /api/hello) p50 {f.floor_ms_p50:.2f} ms, p99 {f.floor_ms_p99:.2f} ms"
        print(f"\n[{f.name}] {floor_}")
        agents, target = TARGETS[f.name]
        if "claims_per_second" in v:
            print(
                f"  claims/s, {agents} agents: {v['claims_per_second']:,.0f} (target >= {target:,.0f}); "
                f"{v['claims']:.0f} claimed, {v['duplicates']:.0f} duplicates, {v['unclaimed']:.0f} left"
            )
        for key in ("one-server", "two-servers"):
            if f"wake_{key}_ms_p50" in v:
                p50, p99 = v[f"wake_{key}_ms_p50"], v[f"wake_{key}_ms_p99"]
                print(
                    f"  wake latency ({key}), created -> answered: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
                    f"({p50 / f.floor_ms_p50:.1f}x / {p99 / f.floor_ms_p50:.1f}x the floor's p50)"
                )
        if "ordinary_ms_p50" in v:
            print(
                f"  ordinary request (GET /api/flow-runs/{{id}}): p50 {v['ordinary_ms_p50']:.1f} ms, "
                f"p99 {v['ordinary_ms_p99']:.1f} ms; with {IDLE_AGENTS} idle agents long-polling: "
                f"p50 {v['ordinary_with_waiters_ms_p50']:.1f} ms, p99 {v['ordinary_with_waiters_ms_p99']:.1f} ms"
            )
        for error in f.errors[:10]:
            print(f"  ERROR {error}")


def targets_of(results: list[Figures]) -> list[Target]:
    """Issue 9's claim-rate targets (and the raw wake latency, no target) with their floors."""
    out = []
    for f in results:
        agents, target = TARGETS[f.name]
        v, floor_text = f.values, f"hello p50 {f.floor_ms_p50:.2f} ms"
        if "claims_per_second" in v:
            per_claim_ms = 1000 / v["claims_per_second"]
            out.append(
                Target(
                    f"claims/s, {agents} agents, {f.name} ({v['duplicates']:.0f} duplicates)",
                    v["claims_per_second"] if not v["duplicates"] else 0.0,
                    "/s",
                    target,
                    "min",
                    floor=f.floor_ms_p50,
                    floor_text=floor_text,
                    ratio=f.floor_ms_p50 / per_claim_ms,
                    ratio_text="claims per hello round trip",
                )
            )
        for key in ("one-server", "two-servers"):
            if f"wake_{key}_ms_p50" in v:
                out.append(
                    Target.latency(
                        f"long poll wake ({f.name}, {key}), created -> answered, p50 (no target)",
                        v[f"wake_{key}_ms_p50"],
                        None,
                        f.floor_ms_p50,
                    )
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3000, help="runs to create and then claim")
    parser.add_argument("--samples", type=int, default=50, help="wake-ups timed per latency figure")
    parser.add_argument("--ordinary", type=int, default=300, help="ordinary requests timed with and without waiters")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="bench one database")
    parser.add_argument("--json", default="bench/results/queue_bench.json", help="where to write the figures")
    args = parser.parse_args(argv)

    results: list[Figures] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
        home = Path(tmp)
        if args.only in (None, "sqlite"):
            results.append(bench_sqlite(args, home))
        if args.only in (None, "postgres") and (pg := bench_postgres(args, home, notes)) is not None:
            results.append(pg)
    report(results, notes, args)
    targets = targets_of(results)
    print()
    print_targets(targets)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"bench": "queue", "python": platform.python_version(), "cpus": os.cpu_count(), "notes": notes}
            | {"load_average": os.getloadavg()[0], "results": [asdict(f) for f in results]}
            | {"targets": [t.to_dict() for t in targets]},
            indent=2,
        )
    )
    print(f"\nfigures written to {out}")
    failed = any(f.errors or f.values.get("duplicates") for f in results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
