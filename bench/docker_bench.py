"""Docker backend benchmark: container runs per second end to end, and pickup-to-start latency.

A real API server (SQLite, loopback) and a real docker agent in this process; every run is a
trivial busybox container (``true``) on the host network. Two phases:

- **burst**: N runs created at once while the agent idles, then a poke. Prints runs per second
  (first run created → last run final) and the latency of each run from *created* (API) to
  *container started* (the engine's ``State.StartedAt``), which here includes queueing.
- **one at a time**: runs created singly with a poke, each waited for, so the latency is that
  of an idle agent: claim, image check, create, start.

Usage: ``python bench/docker_bench.py [--runs 30] [--single 10]``. Needs a Docker engine: the
one that answers (``DOCKER_HOST`` or the default socket); with pytest installed, the test
fixtures' engine helper is used, which starts one when none answers, as the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pendulum

from agent_core.client import APIClient
from agent_core.testing.harness import AgentThread, wait_until
from agent_core.testing.servers import APIServer

BENCH_LABEL = "agent.bench"
BUSYBOX = Path("/bin/busybox")
BENCH_IMAGE = "agent-bench-busybox:latest"


# --- engine and image -------------------------------------------------------------------------


@contextlib.contextmanager
def engine_and_image() -> Iterator[tuple[docker.DockerClient, str]]:
    """A client of a running engine and a busybox image tag, built like the test fixtures do."""
    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)  # run as a script: the workspace root holds `tests`
    try:
        from tests.fixtures import services
    except ImportError:  # no pytest here: use the engine that answers, build the image by hand
        services = None
    if services is not None:
        # The fixtures' own generator: it shares (or starts and later stops) the engine the
        # same way concurrent test sessions do.
        session = services.docker_engine.__wrapped__()
        client = next(session)
        try:
            yield client, services.busybox_image.__wrapped__(client)
        finally:
            with contextlib.suppress(StopIteration):
                next(session)
        return
    client = docker.from_env()
    try:
        client.ping()
    except Exception as exc:
        raise SystemExit(f"no Docker engine answers ({exc}); start one (see TESTING.md)") from None
    try:
        yield client, _import_busybox(client)
    finally:
        client.close()


def _import_busybox(client: docker.DockerClient) -> str:
    """A minimal copy of the fixtures' busybox image: the static binary and its applet links."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.get(BENCH_IMAGE)
        return BENCH_IMAGE
    if not BUSYBOX.is_file():
        raise SystemExit(f"{BUSYBOX} is missing: apt-get install busybox-static")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, kind in (("bin", tarfile.DIRTYPE), ("tmp", tarfile.DIRTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mode = kind, 0o1777 if name == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), "bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
    repository, _, tag = BENCH_IMAGE.rpartition(":")
    client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=tag, changes=["ENV PATH=/bin"])
    return BENCH_IMAGE


# --- measuring --------------------------------------------------------------------------------


def percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return (
        f"p50 {pick(0.5) * 1000:.0f} ms, p90 {pick(0.9) * 1000:.0f} ms, p99 {pick(0.99) * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms, mean {statistics.fmean(ordered) * 1000:.0f} ms"
    )


def start_latencies(client: APIClient, engine: docker.DockerClient, runs: list[dict[str, Any]]) -> list[float]:
    """Run created (API) → container started (engine), in seconds, for each run."""
    latencies = []
    for run in runs:
        created = pendulum.parse(client.get_flow_run(run["id"])["created"])
        [container] = engine.containers.list(all=True, filters={"label": f"agent.flow_run_id={run['id']}"})
        started = pendulum.parse(container.attrs["State"]["StartedAt"])
        latencies.append((started - created).total_seconds())  # type: ignore[operator]
    return latencies


def wait_final(client: APIClient, run_ids: list[str], timeout: float) -> None:
    pending = set(run_ids)

    def done() -> bool:
        for run_id in list(pending):
            state = client.get_flow_run(run_id)["state"]["type"]
            if state in ("Success", "Failed", "Cancelled"):
                if state != "Success":
                    raise SystemExit(f"run {run_id} ended {state}")
                pending.discard(run_id)
        return not pending

    if not wait_until(done, timeout, interval=0.02):
        raise SystemExit(f"{len(pending)} run(s) not final after {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs in the burst")
    parser.add_argument("--single", type=int, default=10, help="runs created one at a time")
    parser.add_argument("--network-mode", default="host", help="host (fastest here) or none")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="agent-docker-bench-"))
    bench_id = uuid.uuid4().hex[:12]
    with engine_and_image() as (engine, image), APIServer(f"sqlite:///{tmp / 'bench.db'}") as server:
        info = engine.version()
        print(f"Docker {info.get('Version')} (API {info.get('ApiVersion')}), {os.cpu_count()} CPUs, image {image}")
        client = server.client()
        flow = client.register_flow("docker-bench", "true")
        settings = {
            "image": image,
            "network_mode": args.network_mode,
            "pull_policy": "if-not-present",
            "auto_remove": False,  # kept for their StartedAt; removed below by label
            "state_dir": str(tmp / "state"),
            "container_labels": {BENCH_LABEL: bench_id},
        }
        agent = AgentThread(
            server.url, "docker", name=f"bench-{bench_id}", backend_settings=settings, monitor_interval=0.1
        )
        try:
            with agent:
                # Burst.
                started = time.perf_counter()
                burst = [client.create_flow_run(flow_id=flow["id"]) for _ in range(args.runs)]
                agent.agent.poke()
                wait_final(client, [r["id"] for r in burst], 120)
                elapsed = time.perf_counter() - started
                print(
                    f"burst of {args.runs} runs ({args.network_mode} network, {agent.agent.pool.workers} deploy "
                    f"workers): {elapsed:.2f} s, {args.runs / elapsed:.2f} container runs/s end to end"
                )
                print(f"  created -> container started: {percentiles(start_latencies(client, engine, burst))}")

                # One at a time, the agent idle in between.
                single = []
                for _ in range(args.single):
                    time.sleep(0.3)  # let the agent settle into its idle backoff
                    run = client.create_flow_run(flow_id=flow["id"])
                    agent.agent.poke()
                    wait_final(client, [run["id"]], 30)
                    single.append(run)
                print(
                    f"one at a time ({args.single} runs, poke after each create): created -> container started: "
                    f"{percentiles(start_latencies(client, engine, single))}"
                )
        finally:
            for container in engine.containers.list(
                all=True, filters={"label": f"{BENCH_LABEL}={bench_id}"}, ignore_removed=True
            ):
                with contextlib.suppress(docker.errors.NotFound):
                    container.remove(force=True)
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
