"""The chaos suite's parts: a real ``agent server start`` process, real ``agent start`` processes,
a workload that leaves a marker per attempt, a gate that holds deploys, and the tally.

Every test here is marked ``chaos`` and bounded by a per-test timeout, so that the whole
suite stays within about two minutes on two cores (``-m chaos`` selects it, ``-m "not chaos"``
leaves it out). Bursts are small (20-40 runs); every wait polls with a generous deadline.

The tally counts what a failure of the system under test looks like:

- **lost**: a run that did not end Success although nothing made it fail (its work is gone);
- **stuck**: a run not final when the deadline passed (Submitted or Running for good);
- **twice**: an attempt of a run whose workload started more than once (two markers for one
  attempt), or a run given another attempt where none was due (a restart in time must
  re-attach, a claimed but never launched run must be handed back, not failed and retried);
- **lines lost**: output lines a workload printed that never reached the run's logs.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from agent_core.client import APIClient
from agent_core.testing.harness import free_loopback_port
from tests.e2e.conftest import (  # noqa: F401 - fixtures shared with the end-to-end tests
    AGENT_CLI,
    AgentProcess,
    agent_env,
    agent_home,
    run_cli,
    start_agent,
    wait_until,
)

CHAOS_DIR = Path(__file__).parent
# Per test; the slowest test here takes about 25 s alone on an idle machine.
TEST_TIMEOUT = 100
FINAL_STATES = frozenset({"Success", "Failed", "Cancelled"})
# Agents here heartbeat every second, so that a short [server] agent_lease_seconds governs
# their leases (a lease is at least three heartbeat periods).
FAST_AGENT = {
    "AGENT__AGENT__HEARTBEAT_PERIOD": "1",
    "AGENT__AGENT__MONITOR_INTERVAL": "0.2",
    "AGENT__AGENT__PREFETCH_SECONDS": "0",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CHAOS_DIR in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.chaos)
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


# --- the API server as a process -------------------------------------------------------------


@dataclass
class ServerProcess:
    """``agent server start`` on a fixed loopback port: SIGKILL it, start it again on the same port."""

    db_url: str
    home: Path
    env: dict[str, str]
    logs: Path
    port: int = field(default_factory=free_loopback_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServerProcess:
        self.starts += 1
        out = self.logs / f"server-{self.port}-{self.starts}.out"
        command = [*AGENT_CLI, "server", "start", "--port", str(self.port), "--db", self.db_url]
        with out.open("wb") as stdout:
            self.proc = subprocess.Popen(
                command, env=self.env, cwd=self.home, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the API server exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/api/hello", timeout=1).status_code == 200:
                    return self
            time.sleep(0.05)
        pytest.fail(f"the API server did not answer within {timeout:g}s:\n{self.output()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye, connections cut."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def output(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob(f"server-{self.port}-*.out")))


@pytest.fixture
def start_server(
    agent_env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(db_url, lease=3.0, **env)``: a running API server process; ended at teardown."""
    started: list[ServerProcess] = []

    def start(db_url: str, *, lease: float = 90.0, env: dict[str, str] | None = None) -> ServerProcess:
        full_env = {**agent_env, "AGENT__SERVER__AGENT_LEASE_SECONDS": str(lease), **(env or {})}
        server = ServerProcess(db_url, tmp_path, full_env, tmp_path)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    """``tmp_path`` with ``home-a`` and ``home-b``: the AGENT_HOMEs of two agents (two machines)."""
    for name in ("home-a", "home-b"):
        (tmp_path / name).mkdir()
    return tmp_path


# --- the workload ----------------------------------------------------------------------------


def marker_command(markers: Path, seconds: float = 0.0, lines: int = 0, line_gap: float = 0.0) -> str:
    """A flow command that leaves ``markers/RUN_ID.ATTEMPT.PID`` when it starts, prints ``lines``
    numbered lines ``line_gap`` seconds apart, then sleeps ``seconds`` and exits 0.

    A shell script: a Python child per run would cost a burst more than the agent does.
    """
    script = 'touch "$0/$AGENT_FLOW_RUN_ID.$AGENT_FLOW_RUN_ATTEMPT.$$"'
    if lines:
        script += f'; i=1; while [ $i -le {lines} ]; do echo "chaos-line $i"; i=$((i+1)); sleep {line_gap}; done'
    if seconds:
        script += f"; sleep {seconds}"
    return shlex.join(["sh", "-c", script, str(markers)])


def markers_by_run(markers: Path) -> dict[str, collections.Counter[int]]:
    """For each run id, how many times each attempt's workload started."""
    found: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for path in markers.iterdir():
        run_id, attempt, _pid = path.name.split(".")
        found[run_id][int(attempt)] += 1
    return found


# --- a gate that holds deploys ---------------------------------------------------------------

GATE_MODULE = '''
"""A test extension: holds every deploy while the gate file exists (flow_run_env runs
during a deploy, before the workload starts), after letting the first CHAOS_GATE_PASS through."""

import itertools
import os
import time
from pathlib import Path

from agent_core import hookimpl

_GATE = Path(os.environ["CHAOS_GATE"]) if os.environ.get("CHAOS_GATE") else None
_PASS = int(os.environ.get("CHAOS_GATE_PASS", "0"))
_CALLS = itertools.count(1)


@hookimpl
def flow_run_env(flow_run, agent):
    if _GATE is None or next(_CALLS) <= _PASS:
        return None
    (_GATE.parent / f"held.{flow_run.id}").touch()
    while _GATE.exists():
        time.sleep(0.05)
    return None
'''


@dataclass
class Gate:
    """The ``chaos_gate`` extension on the agents' ``PYTHONPATH``: ``env(pass_first=N)`` for an
    agent whose deploys after the N-th wait while the gate is closed; ``held()`` counts them."""

    root: Path

    @property
    def file(self) -> Path:
        return self.root / "state" / "closed"

    def env(self, pass_first: int = 0) -> dict[str, str]:
        return {"PYTHONPATH": str(self.root / "site"), "CHAOS_GATE": str(self.file), "CHAOS_GATE_PASS": str(pass_first)}

    def close(self) -> None:
        self.file.touch()

    def open(self) -> None:
        self.file.unlink(missing_ok=True)

    def held(self) -> int:
        return len(list((self.root / "state").glob("held.*")))


@pytest.fixture
def gate(tmp_path: Path) -> Gate:
    """A closed gate, installed as a real distribution with an ``agent.plugins`` entry point."""
    root = tmp_path / "gate"
    site = root / "site"
    dist = site / "chaos_gate-1.0.dist-info"
    dist.mkdir(parents=True)
    (root / "state").mkdir()
    (site / "chaos_gate.py").write_text(textwrap.dedent(GATE_MODULE))
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: chaos-gate\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[agent.plugins]\nchaos_gate = chaos_gate\n")
    gate = Gate(root)
    gate.close()
    return gate


# --- watching runs ---------------------------------------------------------------------------


def all_runs(client: APIClient, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(run_ids)
    return {r["id"]: r for r in client.iter_flow_runs() if r["id"] in wanted}


def states_of(runs: dict[str, dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(r["state"]["type"] for r in runs.values())


def wait_for_runs(
    client: APIClient,
    run_ids: list[str],
    condition: Callable[[dict[str, dict[str, Any]]], bool],
    timeout: float,
    what: str,
    outputs: Callable[[], str] = lambda: "",
) -> dict[str, dict[str, Any]]:
    """The runs once ``condition`` holds for them; fails with their states after ``timeout`` s."""
    last: dict[str, dict[str, Any]] = {}

    def check() -> bool:
        nonlocal last
        with contextlib.suppress(Exception):  # the API may be away for a moment in these tests
            last = all_runs(client, run_ids)
            return condition(last)
        return False

    wait_until(check, timeout, interval=0.2, message=lambda: f"{what}; states {dict(states_of(last))}\n{outputs()}")
    return last


def until_final(client: APIClient, run_ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """The runs once all are final, or as they are when ``timeout`` s have passed (no failure:
    the tally counts the stuck ones)."""
    last: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = all_runs(client, run_ids)
            if len(last) == len(run_ids) and all(r["state"]["type"] in FINAL_STATES for r in last.values()):
                return last
        time.sleep(0.25)
    return last


# --- the tally -------------------------------------------------------------------------------


@dataclass
class Tally:
    lost: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    twice: list[str] = field(default_factory=list)
    lines_lost: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "lost": len(self.lost),
            "stuck": len(self.stuck),
            "twice": len(self.twice),
            "lines lost": self.lines_lost,
        }

    def assert_clean(self, context: str = "") -> None:
        zero = {"lost": 0, "stuck": 0, "twice": 0, "lines lost": 0}
        assert self.counts == zero, "\n".join([f"tally {self.counts}", *self.details[:30], context[-4000:]])


def tally(
    client: APIClient,
    runs: dict[str, dict[str, Any]],
    run_ids: list[str],
    markers: Path,
    *,
    expected_failed: Iterable[str] = (),
    retry_allowed: bool = False,
) -> Tally:
    """Count lost, stuck and twice over ``run_ids`` (their final view ``runs``).

    :param expected_failed: runs meant to fail (a run config that cannot deploy): they must end
        Failed, and never run.
    :param retry_allowed: whether a run may have needed a second attempt (an agent that was
        killed and not restarted while the run was deployed or running). Otherwise a run with
        more than one attempt, or with a Failed state in its history, was run twice or lost
        an attempt it should have kept.
    """
    result = Tally()
    started = markers_by_run(markers)
    must_fail = set(expected_failed)
    for run_id in run_ids:
        run = runs.get(run_id)
        state = run["state"]["type"] if run else "missing"
        attempts = started.get(run_id, collections.Counter())
        if state not in FINAL_STATES:
            result.stuck.append(run_id)
            result.details.append(f"stuck: {run_id} {state} (attempt {run and run.get('attempt')})")
            continue
        if run_id in must_fail:
            if state != "Failed" or attempts:
                result.lost.append(run_id)
                result.details.append(f"meant to fail: {run_id} {state}, workload started {dict(attempts)}")
            continue
        history = [entry["type"] for entry in client.flow_run_states(run_id)]
        if state != "Success":
            result.lost.append(run_id)
            result.details.append(f"lost: {run_id} {state}: {run['state'].get('message')!r}; history {history}")
        elif any(count > 1 for count in attempts.values()):
            result.twice.append(run_id)
            result.details.append(f"twice: {run_id} started {dict(attempts)} (attempt: times)")
        elif not retry_allowed and (run.get("attempt", 1) > 1 or "Failed" in history):
            result.twice.append(run_id)
            result.details.append(
                f"needless retry: {run_id} attempt {run.get('attempt')}, history {history}, started {dict(attempts)}"
            )
        elif state == "Success" and not attempts.get(run.get("attempt", 1)):
            result.lost.append(run_id)
            result.details.append(f"Success without its workload: {run_id} attempt {run.get('attempt')}")
    return result


def kill_agent(agent: AgentProcess) -> None:
    """SIGKILL: no drain, no goodbye; its local workloads live on in their own sessions."""
    agent.send(signal.SIGKILL)
    agent.wait(10)


def python_env_dump(path: Path) -> str:
    """A flow command that writes its whole environment to ``path`` as ``NAME=VALUE`` lines
    and prints it (so that the run's logs get it too)."""
    code = "import os, sys; text = ''.join(f'{k}={v}\\n' for k, v in sorted(os.environ.items())); "
    code += "open(sys.argv[1], 'w').write(text); print(text)"
    return shlex.join([sys.executable, "-c", code, str(path)])


def environ_without_agent_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENT")}
