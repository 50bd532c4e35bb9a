"""Wall time of the ``agent`` command's cheap paths against the floor of importing typer and rich.

Issue 9's target: ``agent --help`` within 1.5x ``python -c "import typer, rich"``, measured in
the same run. Every command is a fresh process, as a person or a script runs it; the rounds
interleave the commands so that a machine busy with other work slows them all alike. Prints a
table and writes the figures to a JSON file (``--json``) so runs can be compared.

    .venv/bin/python -m bench.cli_bench [--rounds 15] [--json bench/results/cli_bench.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent_core.testing.servers import APIServer
from bench.targets import Target

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5


def agent_command() -> list[str]:
    script = Path(sys.executable).with_name("agent")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "agent_core.cli.main"]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): the CPU figure moves less when the machine is busy."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-500:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def summary(wall: list[float], cpu: list[float]) -> dict[str, float]:
    ordered = sorted(wall)
    return {
        "median_s": statistics.median(ordered),
        "min_s": ordered[0],
        "p90_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "cpu_median_s": statistics.median(cpu),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="timed runs of each command (after 2 warm-ups)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "cli_bench.json")
    args = parser.parse_args(argv)

    agent = agent_command()
    with tempfile.TemporaryDirectory() as home, APIServer(f"sqlite:///{home}/server.db") as server:
        client = server.client()
        flow = client.register_flow("bench", "echo bench")
        for _ in range(20):
            client.create_flow_run(flow_id=flow["id"])
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
        env.update(AGENT_HOME=home, COLUMNS="200", NO_COLOR="1")
        commands = {
            'floor: python -c "import typer, rich"': [sys.executable, "-c", "import typer, rich"],
            "agent --help": [*agent, "--help"],
            "agent --version": [*agent, "--version"],
            "agent --api URL runs list": [*agent, "--api", server.url, "runs", "list"],
            "agent runs list --api URL": [*agent, "runs", "list", "--api", server.url],
            "agent runs list (embedded: imports the server)": [*agent, "runs", "list"],
        }
        for argv_ in commands.values():  # warm the page cache and the bytecode
            for _ in range(2):
                timed(argv_, env)
        wall: dict[str, list[float]] = {name: [] for name in commands}
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv_ in commands.items():
                elapsed, used = timed(argv_, env)
                wall[name].append(elapsed)
                cpu[name].append(used)

    floor_name = next(iter(commands))
    floor = summary(wall[floor_name], cpu[floor_name])
    results = {}
    print(f"{'command':<50} {'median':>8} {'min':>8} {'p90':>8} {'x floor':>8} {'cpu':>8} {'x floor':>8}")
    for name in commands:
        figures = summary(wall[name], cpu[name])
        figures["ratio_to_floor"] = figures["median_s"] / floor["median_s"]
        figures["min_ratio_to_floor"] = figures["min_s"] / floor["min_s"]
        figures["cpu_ratio_to_floor"] = figures["cpu_median_s"] / floor["cpu_median_s"]
        results[name] = figures
        print(
            f"{name:<50} {figures['median_s'] * 1000:>6.0f}ms {figures['min_s'] * 1000:>6.0f}ms "
            f"{figures['p90_s'] * 1000:>6.0f}ms {figures['ratio_to_floor']:>7.2f}x "
            f"{figures['cpu_median_s'] * 1000:>6.0f}ms {figures['cpu_ratio_to_floor']:>7.2f}x"
        )
    help_figures = results["agent --help"]
    help_ratio = help_figures["ratio_to_floor"]
    verdict = "meets" if help_ratio <= TARGET_RATIO else "misses"
    print(
        f"\nagent --help is {help_ratio:.2f}x the floor by median wall time ({help_figures['min_ratio_to_floor']:.2f}x "
        f"by the fastest run, {help_figures['cpu_ratio_to_floor']:.2f}x by CPU time): "
        f"{verdict} the target of {TARGET_RATIO}x"
    )
    print(f"medians of {args.rounds} rounds, each command a fresh process; load average {os.getloadavg()[0]:.2f}")

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "bench": "cli",
                "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": os.getloadavg()[0],
                "rounds": args.rounds,
                "target_ratio": TARGET_RATIO,
                "results": results,
                "targets": [
                    Target(
                        "`agent --help` wall time (median)",
                        help_figures["median_s"] * 1000,
                        "ms",
                        floor["median_s"] * 1000 * TARGET_RATIO,
                        "max",
                        floor=floor["median_s"] * 1000,
                        floor_text=f"import typer, rich {floor['median_s'] * 1000:.0f} ms",
                        ratio=help_ratio,
                        extra=f"target 1.5x the floor; by CPU {help_figures['cpu_ratio_to_floor']:.2f}x",
                    ).to_dict()
                ],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
