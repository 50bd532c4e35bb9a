"""What a run's container is doing, as the engine's :class:`DeploymentStatus`, and stopping it.

| container | status |
|---|---|
| running, restarting, paused, removing | running |
| created (an agent died between create and start) | started now, running |
| exited / dead | exited(code, reason), its output shipped first |
| gone after its exit was read | that exit again (from its state file) |
| gone, exit never seen | missing |
| daemon unreachable | pending: not the workload's fault |
"""

from __future__ import annotations

import math
import time
from typing import Any

import docker.errors

from agent_core import Deployment, DeploymentStatus, FlowRun
from agent_core.errors import DeploymentError
from agent_plugin_docker import containers, daemon, output
from agent_plugin_docker.containers import LIVE_STATUSES
from agent_plugin_docker.daemon import UNREACHABLE, DaemonUnreachable
from agent_plugin_docker.exits import exit_reason
from agent_plugin_docker.runstate import RunState
from agent_plugin_docker.state import state_dir, state_of

KILL_WAIT_SECONDS = 10.0


def check(agent: Any, flow_run: FlowRun, deployment: Deployment) -> DeploymentStatus:
    key = containers.deployment_key(deployment)
    record = state_of(agent).run_state(state_dir(agent), key)
    try:
        container = containers.get(agent, deployment)
        if container is None:
            return _gone(deployment, record)
        output.ship(agent, flow_run, container, key)
        status = container.status
        if status in LIVE_STATUSES:
            return DeploymentStatus.running()
        if status == "created":
            # Created by an agent that died before starting it: finish that launch.
            containers.start(agent, container, networks=[])
            return DeploymentStatus.running()
        # Exited: the engine marks a container so only once its output is all in the log
        # (it waits for the stream copiers), so the ship above got every line.
    except docker.errors.NotFound:
        return _gone(deployment, record)
    except DaemonUnreachable as exc:
        # Not the workload's fault: wait for the daemon (the heartbeat reports it meanwhile).
        return DeploymentStatus.pending(str(exc))
    except UNREACHABLE as exc:
        return DeploymentStatus.pending(str(daemon.unreachable(agent, exc)))
    except DeploymentError as exc:
        return DeploymentStatus.exited(127, str(exc))
    code = int(container.attrs.get("State", {}).get("ExitCode", -1))
    record.exit_code, record.reason = code, exit_reason(container, code)
    record.save()
    return DeploymentStatus.exited(code, record.reason)


def _gone(deployment: Deployment, record: RunState) -> DeploymentStatus:
    if record.exit_code is not None:
        return DeploymentStatus.exited(record.exit_code, record.reason)
    name = deployment.data.get("name") or deployment.platform_id
    return DeploymentStatus.missing(f"container {name} no longer exists")


def stop(agent: Any, flow_run: FlowRun, deployment: Deployment, grace_seconds: float) -> bool:
    """``docker stop`` with the grace period (then a kill); True once the container is not running."""
    try:
        container = containers.get(agent, deployment)
        if container is None or container.status not in LIVE_STATUSES:
            return True
        # `docker stop` sends the image's stop signal, waits, then kills; whole seconds only.
        container.stop(timeout=max(0, math.ceil(grace_seconds)))
        container.reload()
        if container.status in LIVE_STATUSES:
            container.kill()
            deadline = time.monotonic() + KILL_WAIT_SECONDS
            while container.status in LIVE_STATUSES and time.monotonic() < deadline:
                time.sleep(0.1)
                container.reload()
        output.ship(agent, flow_run, container, containers.deployment_key(deployment))
        return container.status not in LIVE_STATUSES
    except docker.errors.NotFound:
        return True
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException) as exc:
        agent.logger.warning("could not stop the container of run %s: %s", flow_run.id, exc)
        return False  # the monitor tries again next round
