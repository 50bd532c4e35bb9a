"""The ``docker`` backend: each flow run is a container on a Docker engine.

A plain module of ``@hookimpl`` functions (entry point ``docker`` in ``agent.backends``).
Each run attempt becomes one container named ``agent-run-<run id>-<attempt>`` and labelled
with the run, the attempt and the agent, so that a restarted agent finds it again and a
second launch of the same attempt returns the existing container. Output is shipped to the
run's logs from the monitor thread; how far it got is kept in a small file per container
(see :mod:`agent_plugin_docker.runstate`). Containers are created and started separately and
never with the engine's AutoRemove, so that an exit code is always read before the container
goes; the heartbeat removes them once their run is final.
"""

from __future__ import annotations

import math
import shlex
import threading
import time
from pathlib import Path
from typing import Any

import docker.errors
import docker.utils
from docker.models.containers import Container

from agent_core import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment, hookimpl
from agent_core.config import agent_home
from agent_core.errors import AgentError, DeploymentError, StartupError
from agent_core.states import State
from agent_plugin_docker import daemon
from agent_plugin_docker.daemon import BACKEND, UNREACHABLE, DaemonUnreachable, daemon_errors, explain
from agent_plugin_docker.runstate import LogLine, RunState, parse_log, timestamp_key
from agent_plugin_docker.schemas import DockerRunConfigSchema, DockerSettingsSchema

__version__ = "0.1.0"

LABEL_RUN = "agent.flow_run_id"
LABEL_ATTEMPT = "agent.attempt"
LABEL_AGENT = "agent.agent_name"
LABEL_BACKEND = "agent.backend"
LABEL_FLOW = "agent.flow_name"
LABEL_AUTO_REMOVE = "agent.auto_remove"

NAME_PREFIX = "agent-run-"
# Belt and braces: a container younger than this is never reaped, whatever the runs say.
REAP_MIN_AGE = 10.0
LIVE_STATUSES = frozenset({"running", "restarting", "paused", "removing"})


def container_name(flow_run: FlowRun) -> str:
    return f"{NAME_PREFIX}{flow_run.key}"


def _state_dir(agent: Any) -> Path:
    configured = agent.backend_settings.get("state_dir")
    return Path(configured).expanduser() if configured else agent_home() / "docker-runs"


def _run_state(agent: Any, key: str) -> RunState:
    """The in-memory record of a container, loaded from its file the first time."""
    st = daemon.state(agent)
    with st.setdefault("runs_lock", threading.Lock()):
        runs: dict[str, RunState] = st.setdefault("runs", {})
        if key not in runs:
            runs[key] = RunState.load(_state_dir(agent), key)
        return runs[key]


def _forget(agent: Any, key: str) -> None:
    st = daemon.state(agent)
    with st.setdefault("runs_lock", threading.Lock()):
        found = st.setdefault("runs", {}).pop(key, None)
        st.setdefault("ship_locks", {}).pop(key, None)
    (found or RunState.load(_state_dir(agent), key)).remove()


def _ship_lock(agent: Any, key: str) -> threading.Lock:
    st = daemon.state(agent)
    with st.setdefault("runs_lock", threading.Lock()):
        return st.setdefault("ship_locks", {}).setdefault(key, threading.Lock())


# Containers come from `get` (inspected: Name, Config.Labels) or from a sparse `list`
# (Names, Labels): these read both shapes.


def _labels(container: Container) -> dict[str, str]:
    attrs = container.attrs
    return attrs.get("Labels") or (attrs.get("Config") or {}).get("Labels") or {}


def _name(container: Container) -> str:
    attrs = container.attrs
    name = attrs.get("Name") or next(iter(attrs.get("Names") or []), "")
    return str(name).lstrip("/")


def _key_of(container: Container) -> str:
    """``<run id>-<attempt>``: names the container's state file."""
    labels = _labels(container)
    return f"{labels.get(LABEL_RUN, '')}-{labels.get(LABEL_ATTEMPT, '')}"


def _deployment(container: Container, image: str) -> Deployment:
    name = _name(container)
    return Deployment(
        backend=BACKEND,
        platform_id=container.id or "",
        info=f"container {name} ({container.short_id}, image {image})",
        data={"name": name, "image": image, "key": _key_of(container)},
    )


def _key(deployment: Deployment) -> str:
    name = deployment.data.get("name", "")
    return deployment.data.get("key") or name.removeprefix(NAME_PREFIX) or deployment.platform_id


# --- start-up -------------------------------------------------------------------------------


@hookimpl
def settings_schema() -> DockerSettingsSchema:
    return DockerSettingsSchema()


@hookimpl
def run_config_schema() -> DockerRunConfigSchema:
    return DockerRunConfigSchema()


@hookimpl
def on_startup(agent: Any) -> None:
    state_dir = _state_dir(agent)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"cannot create the docker backend's state_dir {state_dir}: {exc.strerror}; "
            "choose another with --set state_dir=PATH"
        ) from None
    # A daemon that is down now is not fatal: the agent starts, the heartbeat reports it on the
    # health endpoint, and deployments work as soon as it answers.
    try:
        daemon.client(agent)
    except DaemonUnreachable as exc:
        agent.set_problem(BACKEND, str(exc))


@hookimpl
def preflight(agent: Any) -> list[CheckResult]:
    url = daemon.daemon_url(agent)
    try:
        docker_client = daemon.client(agent)
        info = docker_client.version()
    except DaemonUnreachable as exc:
        return [CheckResult("docker daemon reachable", False, str(exc))]
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        return [CheckResult("docker daemon reachable", False, str(daemon.unreachable(agent, exc)))]
    server_api = str(info.get("ApiVersion", "0"))
    results = [
        CheckResult(
            "docker daemon reachable",
            True,
            f"{url}: Docker {info.get('Version', '?')} on {info.get('Os', '?')}/{info.get('Arch', '?')}",
        ),
        CheckResult(
            "docker API version",
            daemon.version_tuple(server_api) >= daemon.version_tuple(daemon.PROBE_API_VERSION),
            f"using API {docker_client.api.api_version} (the daemon speaks {info.get('MinAPIVersion', '?')} "
            f"to {server_api}; this plugin needs {daemon.PROBE_API_VERSION} or later)",
        ),
    ]
    results.append(_image_check(agent, docker_client))
    return results


def _image_check(agent: Any, docker_client: docker.DockerClient) -> CheckResult:
    settings = agent.backend_settings
    image, policy = settings.get("image"), settings["pull_policy"]
    if not image:
        return CheckResult("default image", True, "none set: every run config must name an image")
    name = f"default image {image}"
    try:
        if daemon.has_image(docker_client, image):
            return CheckResult(name, True, "present on the Docker host")
        if policy == "never":
            return CheckResult(name, False, "not present on the Docker host and the pull policy is 'never'")
        repository, _ = docker.utils.parse_repository_tag(image)
        auth = daemon._auth_config(agent, repository)
        docker_client.api.inspect_distribution(image, auth_config=auth)
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        detail = explain(exc) if isinstance(exc, docker.errors.DockerException) else str(exc)
        return CheckResult(name, False, f"not present on the Docker host and not pullable: {detail}")
    return CheckResult(name, True, f"not present yet; pullable (pull policy {policy})")


@hookimpl
def list_deployments(agent: Any) -> list[LiveDeployment] | None:
    try:
        containers = _my_containers(agent)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException) as exc:
        # None: the core then re-attaches through the deployments recorded on the runs.
        agent.logger.warning("cannot list docker containers to re-attach: %s", exc)
        return None
    found = []
    for container in containers:
        labels = _labels(container)
        try:
            attempt = int(labels.get(LABEL_ATTEMPT, ""))
        except ValueError:
            continue
        found.append(LiveDeployment(labels[LABEL_RUN], attempt, _deployment(container, container.attrs["Image"])))
    return found


def _my_containers(agent: Any) -> list[Container]:
    """This agent's containers, in every state, from one sparse list call (no inspect each)."""
    docker_client = daemon.client(agent)
    filters = {"label": [f"{LABEL_BACKEND}={BACKEND}", f"{LABEL_AGENT}={agent.name}", LABEL_RUN]}
    return docker_client.containers.list(all=True, filters=filters, sparse=True)


# --- deployment -----------------------------------------------------------------------------


def _command(value: str | list[str] | None, what: str) -> list[str] | None:
    if value is None or isinstance(value, list):
        return value or None
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise DeploymentError(f"cannot parse the {what} {value!r}: {exc}") from None
    return argv or None  # empty: the image's own


def _create_options(flow_run: FlowRun, run_config: dict[str, Any], agent: Any, image: str) -> dict[str, Any]:
    """The keyword arguments of ``containers.create`` for this run."""
    settings = agent.backend_settings
    env = agent.flow_run_env(flow_run, run_config.get("env"))
    env.setdefault("PYTHONUNBUFFERED", "1")  # so output reaches the run's logs as it is printed
    auto_remove = run_config.get("auto_remove")
    if auto_remove is None:
        auto_remove = settings.get("auto_remove", True)
    labels = {
        **settings.get("container_labels", {}),
        **run_config.get("container_labels", {}),
        LABEL_BACKEND: BACKEND,
        LABEL_RUN: flow_run.id,
        LABEL_ATTEMPT: str(flow_run.attempt),
        LABEL_AGENT: agent.name,
        LABEL_FLOW: flow_run.flow_name,
        LABEL_AUTO_REMOVE: "true" if auto_remove else "false",
    }
    options: dict[str, Any] = {
        **run_config.get("create_options", {}),
        "image": image,
        "command": _command(run_config.get("command") or flow_run.command, "command"),
        "name": container_name(flow_run),
        "labels": labels,
        "environment": env,
        "detach": True,
    }
    if (entrypoint := _command(run_config.get("entrypoint"), "entrypoint")) is not None:
        options["entrypoint"] = entrypoint
    network_mode, networks = _networks(run_config, settings)
    if network_mode:
        options["network_mode"] = network_mode
    elif networks:
        options["network"] = networks[0]  # set at creation; the others are connected before start
    volumes = [*settings.get("volumes", []), *run_config.get("volumes", [])]
    if volumes:
        options["volumes"] = volumes
    if run_config.get("mem_limit") is not None:
        options["mem_limit"] = run_config["mem_limit"]
    if run_config.get("cpus") is not None:
        options["nano_cpus"] = int(run_config["cpus"] * 1e9)
    return options


@hookimpl
def deploy_flow(flow_run: FlowRun, run_config: dict[str, Any], agent: Any) -> Deployment:
    settings = agent.backend_settings
    image = run_config.get("image") or settings.get("image")
    if not image:
        raise DeploymentError(
            "no image to run: set 'image' in the run's docker run config or the agent's default (--set image=NAME)"
        )
    options = _create_options(flow_run, run_config, agent, image)
    name = options["name"]
    docker_client = daemon.client(agent)

    existing = _existing(agent, docker_client, flow_run, name)
    if existing is not None:
        return _relaunch(agent, flow_run, existing, image)

    def log(message: str) -> None:
        agent.write_run_log(flow_run, message)

    policy = run_config.get("pull_policy") or settings["pull_policy"]
    daemon.ensure_image(agent, docker_client, image, policy, log)

    try:
        container = docker_client.containers.create(**options)
    except TypeError as exc:
        # The SDK's answer to an option it does not know (from create_options).
        raise DeploymentError(f"invalid create_options: {exc}") from None
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            # Another launch of this attempt created it between our look and our create.
            existing = _existing(agent, docker_client, flow_run, name)
            if existing is not None:
                return _relaunch(agent, flow_run, existing, image)
        raise DeploymentError(f"docker could not create container {name}: {explain(exc)}") from None
    except UNREACHABLE as exc:
        raise daemon.unreachable(agent, exc) from None
    network_mode, networks = _networks(run_config, settings)
    _start(agent, container, networks=[] if network_mode else networks[1:])
    return _deployment(container, image)


def _networks(run_config: dict[str, Any], settings: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The network mode, or the networks, of a run: its own choice replaces the agent's as a whole."""
    if run_config.get("network_mode") or run_config.get("networks"):
        return run_config.get("network_mode"), list(run_config.get("networks") or [])
    return settings.get("network_mode"), list(settings.get("networks") or [])


def _existing(agent: Any, docker_client: docker.DockerClient, flow_run: FlowRun, name: str) -> Container | None:
    """The container of this run attempt if one was created before (a repeated launch)."""
    with daemon_errors(agent, f"cannot look for container {name}"):
        try:
            container = docker_client.containers.get(name)
        except docker.errors.NotFound:
            return None
    labels = _labels(container)
    if labels.get(LABEL_RUN) != flow_run.id or labels.get(LABEL_ATTEMPT) != str(flow_run.attempt):
        raise DeploymentError(
            f"a container named {name} exists but was not created for this run attempt; remove it (docker rm -f {name})"
        )
    return container


def _relaunch(agent: Any, flow_run: FlowRun, container: Container, image: str) -> Deployment:
    agent.write_run_log(
        flow_run,
        f"Attempt {flow_run.attempt} was already launched as container {_name(container)} "
        f"({container.status}); not starting it twice",
    )
    if container.status == "created":
        # The earlier launch stopped between create and start (e.g. the agent was killed).
        _start(agent, container, networks=[])
    return _deployment(container, image)


def _start(agent: Any, container: Container, networks: list[str]) -> None:
    """Connect the extra networks and start; on failure remove the container and raise."""
    try:
        for network in networks:
            container.client.api.connect_container_to_network(container.id, network)
        container.start()
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        # A failed start leaves a `created` container behind (e.g. a command missing in the
        # image): it would block the name and never run, so it goes.
        try:
            container.remove(force=True)
        except (*UNREACHABLE, docker.errors.DockerException):
            agent.logger.warning("could not remove container %s after its failed start", _name(container))
        if isinstance(exc, UNREACHABLE):
            raise daemon.unreachable(agent, exc) from None
        raise DeploymentError(f"container {_name(container)} failed to start: {explain(exc)}") from None


# --- following a deployment -----------------------------------------------------------------


def _ship_output(agent: Any, flow_run: FlowRun, container: Container, key: str) -> None:
    """Send the container's output lines not shipped yet to the run's logs."""
    record = _run_state(agent, key)
    with _ship_lock(agent, key):
        since = record.cursor.since()
        try:
            raw = container.logs(stdout=True, stderr=True, timestamps=True, **({"since": since} if since else {}))
        except docker.errors.NotFound:
            raise
        except docker.errors.APIError as exc:
            # e.g. a logging driver that cannot be read back: say so once, keep following it.
            if not record.warned:
                agent.write_run_log(flow_run, f"Cannot read the container's output: {explain(exc)}", "WARNING")
                record.warned = True
            return
        lines: list[LogLine] = parse_log(raw)
        new = record.cursor.unshipped(lines)
        if not new:
            return
        show = agent.backend_settings.get("show_flow_logs", False)
        for line in new:
            agent.write_run_log(flow_run, line.text)
            if show:
                agent.logger.info("[%s] %s", flow_run.name or flow_run.id, line.text)
        record.cursor.advance(lines, new)
        record.save()


def _get(agent: Any, deployment: Deployment) -> Container | None:
    """The deployment's container; None if it no longer exists. Raises if the daemon is down."""
    docker_client = daemon.client(agent)
    for ref in filter(None, (deployment.platform_id, deployment.data.get("name"))):
        try:
            return docker_client.containers.get(ref)
        except docker.errors.NotFound:
            continue
    return None


def _oom_killed(container: Container, code: int) -> bool:
    if container.attrs.get("State", {}).get("OOMKilled"):
        return True
    if code != 137:
        return False
    # The engine sets OOMKilled only when the kernel's OOM notice reaches it before the exit;
    # under load it can come just after (seen here on Docker 20.10 with cgroup v1), and is
    # then only in the engine's event stream as an "oom" event of the container.
    for pause in (0.0, 0.25):
        time.sleep(pause)
        if _oom_event(container):
            return True
    return False


def _oom_event(container: Container) -> bool:
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


def _exit_reason(container: Container, code: int) -> str:
    state = container.attrs.get("State", {})
    limit = container.attrs.get("HostConfig", {}).get("Memory") or 0
    reasons = []
    if _oom_killed(container, code):
        within = f" of {_size(limit)}" if limit else ""
        reasons.append(f"OOM-killed: the container reached its memory limit{within}")
    elif code == 137 and limit:
        # An OOM kill in the first moments of a container can leave no trace at all (the
        # engine starts listening for OOM notices only after the process is running).
        reasons.append(
            f"killed by signal 9, perhaps out of memory: the engine saw no OOM kill, "
            f"but the container has a memory limit of {_size(limit)}"
        )
    elif code > 128:
        reasons.append(f"killed by signal {code - 128}")
    if state.get("Error"):
        reasons.append(str(state["Error"]))
    return "; ".join(reasons)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.4g} {unit}"


@hookimpl
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any) -> DeploymentStatus:
    key = _key(deployment)
    record = _run_state(agent, key)
    try:
        container = _get(agent, deployment)
        if container is None:
            return _gone(deployment, record)
        _ship_output(agent, flow_run, container, key)
        status = container.status
        if status in LIVE_STATUSES:
            return DeploymentStatus.running()
        if status == "created":
            # Created by an agent that died before starting it: finish that launch.
            _start(agent, container, networks=[])
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
    record.exit_code, record.reason = code, _exit_reason(container, code)
    record.save()
    return DeploymentStatus.exited(code, record.reason)


def _gone(deployment: Deployment, record: RunState) -> DeploymentStatus:
    if record.exit_code is not None:
        return DeploymentStatus.exited(record.exit_code, record.reason)
    name = deployment.data.get("name") or deployment.platform_id
    return DeploymentStatus.missing(f"container {name} no longer exists")


@hookimpl
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: Any, tail: int) -> list[str] | None:
    try:
        container = _get(agent, deployment)
        if container is None:
            return None
        raw = container.logs(stdout=True, stderr=True, tail=tail)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException):
        return None
    return raw.decode("utf-8", errors="replace").splitlines()[-tail:]


@hookimpl
def cancel_deployment(flow_run: FlowRun, deployment: Deployment, agent: Any, grace_seconds: float) -> bool:
    try:
        container = _get(agent, deployment)
        if container is None or container.status not in LIVE_STATUSES:
            return True
        # `docker stop` sends the image's stop signal, waits, then kills; whole seconds only.
        container.stop(timeout=max(0, math.ceil(grace_seconds)))
        container.reload()
        if container.status in LIVE_STATUSES:
            container.kill()
            deadline = time.monotonic() + 10
            while container.status in LIVE_STATUSES and time.monotonic() < deadline:
                time.sleep(0.1)
                container.reload()
        _ship_output(agent, flow_run, container, _key(deployment))
        return container.status not in LIVE_STATUSES
    except docker.errors.NotFound:
        return True
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException) as exc:
        agent.logger.warning("could not stop the container of run %s: %s", flow_run.id, exc)
        return False  # the monitor tries again next round


# --- housekeeping ---------------------------------------------------------------------------


@hookimpl
def heartbeat(agent: Any) -> None:
    """Report the daemon on the health endpoint, and reap containers of runs that are over."""
    if daemon.state(agent).get("closed"):
        return  # a last round racing the shutdown
    try:
        daemon.client(agent).ping()
    except DaemonUnreachable as exc:
        agent.set_problem(BACKEND, str(exc))
        return
    except (*UNREACHABLE, docker.errors.DockerException) as exc:
        agent.set_problem(BACKEND, str(daemon.unreachable(agent, exc)))
        return
    agent.clear_problem(BACKEND)
    _reap(agent)


def _reap(agent: Any) -> None:
    """Remove the containers (and state files) of run attempts that are no longer active.

    Active means Submitted, Running or Cancelling for this agent: once the monitor has read a
    container's exit and set the run's final state, nothing needs the container any more. The
    containers are listed before the runs, so a container is never judged against a list of
    runs older than itself.
    """
    try:
        containers = _my_containers(agent)
    except (DaemonUnreachable, *UNREACHABLE, docker.errors.DockerException):
        return
    try:
        active_runs = agent.client.list_flow_runs(
            agent_id=agent.id, states=[State.SUBMITTED.value, State.RUNNING.value, State.CANCELLING.value]
        )
    except AgentError:
        return
    active = {f"{run['id']}-{run.get('attempt', 1)}" for run in active_runs}
    settled: set[str] = daemon.state(agent).setdefault("settled", set())
    now = time.time()
    keys = set()
    for container in containers:
        key = _key_of(container)
        keys.add(key)
        if key in active or container.id in settled:
            continue
        created = container.attrs.get("Created", 0)
        if isinstance(created, int | float) and now - created < REAP_MIN_AGE:
            continue
        name = _name(container)
        try:
            if container.status in LIVE_STATUSES:
                # Its run is over (cancelled or failed while no agent watched): stop the orphan.
                container.stop(timeout=max(0, math.ceil(agent.settings.cancel_grace_seconds)))
            if _labels(container).get(LABEL_AUTO_REMOVE) == "true":
                container.remove(force=True)
            else:
                settled.add(container.id)
        except docker.errors.NotFound:
            pass
        except (*UNREACHABLE, docker.errors.DockerException) as exc:
            agent.logger.warning("could not reap container %s: %s", name, exc)
            continue
        _forget(agent, key)
    # State files of containers removed by someone else.
    state_dir = _state_dir(agent)
    for path in state_dir.glob("*.json") if state_dir.is_dir() else ():
        key = path.name.removesuffix(".json")
        try:
            old = now - path.stat().st_mtime > REAP_MIN_AGE
        except OSError:
            continue
        if old and key not in keys and key not in active:
            _forget(agent, key)


# --- shutdown -------------------------------------------------------------------------------


@hookimpl
def on_shutdown(agent: Any) -> None:
    daemon.close(agent)
