"""Running a real agent in a background thread, for tests of the engine and of backends."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from agent_core.client import APIClient
from agent_core.engine.agent import Agent
from agent_core.engine.settings import AgentSettings
from agent_core.models import FlowRun
from agent_core.plugins import get_plugin_manager
from agent_core.states import State


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; that value, or ``None`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for_state(client: APIClient, run_id: str, states: Iterable[str], timeout: float) -> dict[str, Any]:
    """The run once it is in one of ``states``; AssertionError (with the run) on timeout."""
    wanted = set(states)
    last: dict[str, Any] = {}

    def check() -> bool:
        nonlocal last
        last = client.get_flow_run(run_id)
        return last["state"]["type"] in wanted

    if not wait_until(check, timeout):
        raise AssertionError(f"run {run_id} not in {sorted(wanted)} after {timeout}s: {last.get('state')}")
    return last


def wait_for_final(client: APIClient, run_id: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for_state(client, run_id, [s.value for s in State if s.is_final], timeout)


class AgentThread:
    """An :class:`Agent` running ``start()`` on a thread; ``stop()`` shuts it down gracefully."""

    def __init__(
        self,
        api_url: str,
        backend: str,
        *,
        key: str = "",
        plugins: Iterable[Any] = (),
        load_entrypoints: bool = True,
        **settings: Any,
    ) -> None:
        settings.setdefault("name", f"test-agent-{id(self):x}")
        settings.setdefault("monitor_interval", 0.1)
        settings.setdefault("heartbeat_period", 0.5)
        settings.setdefault("drain_timeout", 10.0)
        # Long polls still, but short ones: checks that count polls see several in seconds.
        settings.setdefault("long_poll_seconds", 1.0)
        self.client = APIClient(api_url, key, retries=1, backoff=0.1)
        pm = get_plugin_manager(
            backend if load_entrypoints else None, load_entrypoints=load_entrypoints, plugins=plugins
        )
        self.agent = Agent(AgentSettings(backend=backend, api_url=api_url, api_key=key, **settings), self.client, pm)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"agent-{settings['name']}", daemon=True)

    def _run(self) -> None:
        try:
            self.agent.start()
        except BaseException as exc:
            self.error = exc

    def start(self) -> AgentThread:
        self.thread.start()
        if not wait_until(lambda: self.agent.polls > 0 or self.error or not self.thread.is_alive(), 30):
            raise AssertionError("agent did not start polling within 30 s")
        if self.error:
            raise self.error
        return self

    def stop(self, timeout: float = 30) -> None:
        self.agent.stop()
        self.thread.join(timeout)
        self.client.close()
        if self.thread.is_alive():
            raise AssertionError(f"agent did not stop within {timeout}s")

    def __enter__(self) -> AgentThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_log_messages(client: APIClient, run_id: str) -> list[str]:
    """Every log message of a run, in order (all pages)."""
    messages: list[str] = []
    cursor = None
    while True:
        items, cursor = client.read_logs(run_id, cursor)
        if not items:
            return messages
        messages += [item["message"] for item in items]


def free_loopback_port() -> int:
    """A free port on 127.0.0.1 for a server to bind later.

    Chosen below 32768, where Linux starts handing out ephemeral client ports, so that no
    unrelated outgoing connection can take it between this check and the server's bind.
    """
    for _ in range(100):
        port = random.randint(20000, 32000)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000-32000 on 127.0.0.1")


def history_types(client: APIClient, run_id: str) -> list[str]:
    return [entry["type"] for entry in client.flow_run_states(run_id)]


def as_flow_run(data: dict[str, Any]) -> FlowRun:
    return FlowRun.from_api(data)
