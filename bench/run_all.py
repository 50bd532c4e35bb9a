"""Run every benchmark in turn, print its figures and keep them as JSON (``make bench``).

Each script is its own process, so one that cannot run here (no Docker engine, no
PostgreSQL) says why and the others still run. Every bench ends with a JSON file in
``bench/results/`` (gitignored): the one the script writes itself (``queue_bench``,
``cli_bench``), else one written here with the script's printed lines. ``run_all.json`` there
sums up the run: each script's exit status, duration and figures. Exit status: non-zero if any
failed.

    python bench/run_all.py [NAME ...]    (names such as queue_bench; default: all)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
BENCHES = (
    "bench.api_bench",
    "bench.queue_bench",
    "bench.agent_bench",
    "bench.docker_bench",
    "bench.ecs_bench",
    "bench.cli_bench",
)


def run(module: str) -> dict[str, Any]:
    """Run one bench, echoing its output; its record for ``run_all.json``."""
    name = module.rsplit(".", 1)[-1]
    own = RESULTS / f"{name}.json"
    started_at = time.time()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # its lines as they come, not at its end
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    returncode = proc.wait()
    record: dict[str, Any] = {
        "bench": name,
        "module": module,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started_at)),
        "seconds": round(time.perf_counter() - started, 2),
        "returncode": returncode,
    }
    # A file the script wrote during this run is its figures; otherwise keep what it printed.
    if own.exists() and own.stat().st_mtime >= started_at - 1:
        try:
            record["figures"] = json.loads(own.read_text())
        except ValueError:
            record["figures"] = None
    else:
        own.write_text(json.dumps({**record, "output": lines}, indent=2))
        record["output"] = lines
    record["json"] = str(own.relative_to(ROOT))
    return record


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv)
    modules = [m for m in BENCHES if not names or m.rsplit(".", 1)[-1] in names]
    unknown = set(names) - {m.rsplit(".", 1)[-1] for m in BENCHES}
    if unknown:
        print(f"unknown bench: {', '.join(sorted(unknown))}; choose from {', '.join(m[6:] for m in BENCHES)}")
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    records = []
    for module in modules:
        print(f"\n=== {module} ===", flush=True)
        records.append(run(module))
    summary = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "benches": records,
    }
    (RESULTS / "run_all.json").write_text(json.dumps(summary, indent=2))
    gathered = [t for r in records for t in (r.get("figures") or {}).get("targets", [])]
    if gathered:
        from bench.targets import print_table

        print("\n=== issue 9 targets (each beside its floor, measured in the same run) ===")
        print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        print_table(gathered)
    failed = [r["module"] for r in records if r["returncode"] != 0]
    print(f"\nfigures written to {RESULTS.relative_to(ROOT)}/ ({', '.join(r['json'] for r in records)})")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
