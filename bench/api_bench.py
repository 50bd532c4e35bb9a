"""Orchestration API throughput over HTTP, on SQLite and on PostgreSQL.

For each database, against a real waitress server on loopback (``APIServer``):

- runs created per second by one client;
- queue polls per second by one client (``POST /api/queue``, limit 10, the queue full);
- claims per second by 4 racing clients, each with its own ``APIClient`` and agent id, each
  polling the queue and claiming what it finds, as agents do. Wins and conflicts are counted
  and every run is checked to have been claimed exactly once.

Bounded: at most ``--runs`` runs and ``--polls`` polls, and no phase runs longer than
``--seconds``. PostgreSQL is ``AGENT_BENCH_POSTGRES_URL`` or a throw-away local cluster.

    python -m bench.api_bench [--runs 300] [--polls 300] [--seconds 10] [--only sqlite|postgres] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pendulum

from agent_core.errors import StateUpdateConflict
from agent_core.testing.servers import APIServer
from bench.pg import PostgresUnavailable, fresh_database, postgres_server

CLAIMERS = 4


@dataclass
class Result:
    database: str
    created: int = 0
    create_seconds: float = 0.0
    polls: int = 0
    poll_seconds: float = 0.0
    claims: int = 0
    claim_seconds: float = 0.0
    wins: int = 0
    conflicts: int = 0
    double_claims: int = 0
    errors: list[str] = field(default_factory=list)

    def rate(self, count: int, seconds: float) -> str:
        return f"{count / seconds:,.0f}" if seconds > 0 else "-"


def bench_create(server: APIServer, flow_id: str, result: Result, runs: int, budget: float) -> None:
    client = server.client()
    start = time.perf_counter()
    while result.created < runs and time.perf_counter() - start < budget:
        client.create_flow_run(flow_id=flow_id, parameters={"i": result.created})
        result.created += 1
    result.create_seconds = time.perf_counter() - start


def bench_poll(server: APIServer, result: Result, polls: int, budget: float) -> None:
    client = server.client()
    start = time.perf_counter()
    while result.polls < polls and time.perf_counter() - start < budget:
        client.get_queue([], pendulum.now("UTC"), limit=10)
        result.polls += 1
    result.poll_seconds = time.perf_counter() - start


def bench_claims(server: APIServer, result: Result, budget: float) -> dict[str, str]:
    """4 agents poll and claim until the queue is empty; returns run id -> winning agent id."""
    admin = server.client()
    won: dict[str, list[str]] = {}
    lock = threading.Lock()
    counts: Counter[str] = Counter()
    barrier = threading.Barrier(CLAIMERS)
    deadline = time.perf_counter() + budget

    def agent(n: int) -> None:
        client = server.client()
        agent_id = admin.register_agent(name=f"bench-{n}", backend="bench", labels=[])["id"]
        client.set_agent_id(agent_id)
        barrier.wait(timeout=30)
        try:
            while time.perf_counter() < deadline:
                ready = client.get_queue([], pendulum.now("UTC"), limit=10)
                if not ready:
                    return
                for run in ready:
                    try:
                        client.set_flow_run_state(run["id"], version=run["version"], state="Submitted")
                    except StateUpdateConflict:
                        with lock:
                            counts["conflicts"] += 1
                        continue
                    with lock:
                        counts["wins"] += 1
                        won.setdefault(run["id"], []).append(agent_id)
        except Exception as exc:
            with lock:
                result.errors.append(f"agent {n}: {exc!r}")

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    result.claim_seconds = time.perf_counter() - start
    result.wins, result.conflicts = counts["wins"], counts["conflicts"]
    result.claims = len(won)
    result.double_claims = sum(1 for winners in won.values() if len(winners) > 1)
    return {run_id: winners[0] for run_id, winners in won.items()}


def verify(server: APIServer, result: Result, winners: dict[str, str]) -> None:
    """Every claimed run is Submitted by its one winner, with a single claim in its history."""
    client = server.client()
    for run in client.list_flow_runs(limit=result.created):
        if run["id"] not in winners:
            if run["state"]["type"] != "Scheduled":
                result.errors.append(f"run {run['id']} is {run['state']['type']} but nobody won it")
            continue
        if (run["state"]["type"], run["agent_id"]) != ("Submitted", winners[run["id"]]):
            result.errors.append(f"run {run['id']}: {run['state']['type']} by {run['agent_id']}")
        claims = [h for h in client.flow_run_states(run["id"]) if h["type"] == "Submitted"]
        if len(claims) != 1:
            result.double_claims += 1
            result.errors.append(f"run {run['id']} has {len(claims)} claims in its history")


def bench_database(name: str, url: str, args: argparse.Namespace) -> Result:
    result = Result(name)
    with APIServer(url) as server:
        flow = server.client().register_flow("bench", "true")
        bench_create(server, flow["id"], result, args.runs, args.seconds)
        bench_poll(server, result, args.polls, args.seconds)
        winners = bench_claims(server, result, args.seconds)
        verify(server, result, winners)
    return result


def print_table(results: list[Result], args: argparse.Namespace, notes: list[str]) -> None:
    print(f"agent API bench: python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"bounds: {args.runs} runs, {args.polls} polls, {args.seconds:.0f} s per phase; {CLAIMERS} claimers")
    for note in notes:
        print(f"note: {note}")
    header = ("database", "runs created/s", "queue polls/s", "claims/s", "claimed", "wins", "conflicts", "twice")
    rows = [
        (
            r.database,
            r.rate(r.created, r.create_seconds),
            r.rate(r.polls, r.poll_seconds),
            r.rate(r.claims, r.claim_seconds),
            f"{r.claims}/{r.created}",
            str(r.wins),
            str(r.conflicts),
            str(r.double_claims),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    for r in results:
        for error in r.errors[:10]:
            print(f"ERROR {r.database}: {error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="runs to create (and then claim)")
    parser.add_argument("--polls", type=int, default=300, help="queue polls to time")
    parser.add_argument("--seconds", type=float, default=10.0, help="time bound of each phase")
    parser.add_argument("--only", choices=["sqlite", "postgres"], help="bench one database")
    parser.add_argument("--json", default="bench/results/api_bench.json", help="where to write the figures")
    args = parser.parse_args(argv)

    results: list[Result] = []
    notes: list[str] = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory(prefix="agent-bench-") as tmp:
            results.append(bench_database("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", args))
    if args.only in (None, "postgres"):
        try:
            with postgres_server() as server_url, fresh_database(server_url) as url:
                if not os.environ.get("AGENT_BENCH_POSTGRES_URL"):
                    notes.append("postgres is a private local cluster with fsync=off, synchronous_commit=off")
                results.append(bench_database("postgres", url, args))
        except PostgresUnavailable as exc:
            notes.append(f"postgres skipped: {exc}")
    print_table(results, args, notes)
    write_json(Path(args.json), results, notes)
    return 1 if any(r.errors or r.double_claims for r in results) else 0


def write_json(path: Path, results: list[Result], notes: list[str]) -> None:
    def rate(count: int, seconds: float) -> float | None:
        return count / seconds if seconds > 0 else None

    figures = [
        asdict(r)
        | {
            "runs_created_per_second": rate(r.created, r.create_seconds),
            "queue_polls_per_second": rate(r.polls, r.poll_seconds),
            "claims_per_second": rate(r.claims, r.claim_seconds),
        }
        for r in results
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"bench": "api", "python": platform.python_version(), "cpus": os.cpu_count(), "notes": notes}
            | {"claimers": CLAIMERS, "results": figures},
            indent=2,
        )
    )
    print(f"\nfigures written to {path}")


if __name__ == "__main__":
    sys.exit(main())
