"""Run every benchmark in turn and print its figures (``make bench``).

Each script is its own process, so one that cannot run here (no Docker engine, no
PostgreSQL) says why and the others still run. Exit status: non-zero if any failed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHES = ("bench.api_bench", "bench.agent_bench", "bench.docker_bench", "bench.ecs_bench", "bench.cli_bench")


def main() -> int:
    failed = []
    for module in BENCHES:
        print(f"\n=== {module} ===", flush=True)
        result = subprocess.run([sys.executable, "-m", module], cwd=ROOT, check=False)
        if result.returncode != 0:
            failed.append(module)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
