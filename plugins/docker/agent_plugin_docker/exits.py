"""How a container ended, in words: exit code, OOM kill, signal, the engine's own error."""

from __future__ import annotations

import time

import docker.errors
from docker.models.containers import Container

from agent_plugin_docker.daemon import UNREACHABLE
from agent_plugin_docker.runstate import timestamp_key


def oom_killed(container: Container, code: int) -> bool:
    if container.attrs.get("State", {}).get("OOMKilled"):
        return True
    if code != 137:
        return False
    # The engine sets OOMKilled only when the kernel's OOM notice reaches it before the exit;
    # under load it can come just after (seen here on Docker 20.10 with cgroup v1), and is
    # then only in the engine's event stream as an "oom" event of the container.
    for pause in (0.0, 0.25):
        time.sleep(pause)
        if oom_event(container):
            return True
    return False


def oom_event(container: Container) -> bool:
    started = timestamp_key(str(container.attrs.get("State", {}).get("StartedAt", "")))
    try:
        events = container.client.events(
            since=max((started or (int(time.time()) - 3600, 0))[0], 1),
            until=f"{time.time():.6f}",  # in the past: the engine answers from its buffer and ends
            filters={"container": container.id, "event": "oom"},
            decode=True,
        )
        try:
            return any(True for _ in events)
        finally:
            events.close()
    except (*UNREACHABLE, docker.errors.DockerException):
        return False


def exit_reason(container: Container, code: int) -> str:
    state = container.attrs.get("State", {})
    limit = container.attrs.get("HostConfig", {}).get("Memory") or 0
    reasons = []
    if oom_killed(container, code):
        within = f" of {size(limit)}" if limit else ""
        reasons.append(f"OOM-killed: the container reached its memory limit{within}")
    elif code == 137 and limit:
        # An OOM kill in the first moments of a container can leave no trace at all (the
        # engine starts listening for OOM notices only after the process is running).
        reasons.append(
            f"killed by signal 9, perhaps out of memory: the engine saw no OOM kill, "
            f"but the container has a memory limit of {size(limit)}"
        )
    elif code > 128:
        reasons.append(f"killed by signal {code - 128}")
    if state.get("Error"):
        reasons.append(str(state["Error"]))
    return "; ".join(reasons)


def size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.4g} {unit}"
