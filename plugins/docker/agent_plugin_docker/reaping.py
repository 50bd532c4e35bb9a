"""Removing the containers (and state files) of this agent's runs that are over.

The heartbeat reaps every round; an agent that stops (``--until-idle``, ``--max-polls``,
SIGTERM after the drain) reaps once more on its way out, so it leaves no container of a
finished run behind. Containers of runs still Submitted, Running or Cancelling stay: a
restarted agent re-attaches to them.
"""

from __future__ import annotations

import math
import time
from typing import Any

import docker.errors

from agent_core.errors import AgentError
from agent_core.states import State
from agent_plugin_docker import containers
from agent_plugin_docker.containers import LIVE_STATUSES, key_of, labels_of, name_of
from agent_plugin_docker.daemon import UNREACHABLE, DaemonUnreachable
from agent_plugin_docker.options import LABEL_AUTO_REMOVE
from agent_plugin_docker.state import state_dir, state_of

ACTIVE_STATES = [State.SUBMITTED.value, State.RUNNING.value, State.CANCELLING.value]


def reap(agent: Any, *, min_age: float | None = None) -> int:
    """Remove the containers of run attempts that are no longer active; how many were removed.

    Active means Submitted, Running or Cancelling for this agent: once the monitor has read a
    container's exit and set the run's final state, nothing needs the container any more. The
    containers are listed before the runs, so a container is never judged against a list of
    runs older than itself. ``min_age`` (default: the state's ``reap_min_age``) spares young
    containers.
    """
    if not agent.id:
        return 0  # not registered: which runs are this agent's cannot be told
    st = state_of(agent)
    min_age = st.reap_min_age if min_age is None else min_age
    try:
        found = containers.mine(agent)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException):
        return 0
    try:
        active_runs = agent.client.list_flow_runs(agent_id=agent.id, states=ACTIVE_STATES)
    except AgentError as exc:
        agent.logger.debug("not reaping containers: cannot list this agent's runs: %s", exc)
        return 0
    active = {f"{run['id']}-{run.get('attempt', 1)}" for run in active_runs}
    directory = state_dir(agent)
    now = time.time()
    keys = set()
    removed = 0
    for container in found:
        key = key_of(container)
        keys.add(key)
        if key in active or container.id in st.settled:
            continue
        created = container.attrs.get("Created", 0)
        if isinstance(created, int | float) and now - created < min_age:
            continue
        try:
            if container.status in LIVE_STATUSES:
                # Its run is over (cancelled or failed while no agent watched): stop the orphan.
                container.stop(timeout=max(0, math.ceil(agent.settings.cancel_grace_seconds)))
            if labels_of(container).get(LABEL_AUTO_REMOVE) == "true":
                container.remove(force=True)
                removed += 1
            else:
                st.settled.add(container.id)
        except docker.errors.NotFound:
            pass
        except (*UNREACHABLE, docker.errors.DockerException) as exc:
            agent.logger.warning("could not reap container %s: %s", name_of(container), exc)
            continue
        st.forget(directory, key)
    # State files of containers removed by someone else.
    for path in directory.glob("*.json") if directory.is_dir() else ():
        key = path.name.removesuffix(".json")
        try:
            old = now - path.stat().st_mtime > min_age
        except OSError:
            continue
        if old and key not in keys and key not in active:
            st.forget(directory, key)
    return removed
