"""The agent: a supervisor of owned parts, plus claiming and deploying runs.

It keeps the behaviours of Prefect 1.x's ``Agent`` (see ``docs/engine.md``), with each
platform-specific step delegated to the pluggy hooks in :mod:`agent_core.hookspecs`. Its
background work lives in parts (:mod:`agent_core.engine.parts`): started in order by
:meth:`Agent.start`, watched while it runs, stopped in reverse within one budget by
:meth:`Agent.shutdown`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

import pendulum
import pluggy
from marshmallow import Schema, ValidationError

from agent_core import __version__, workload
from agent_core.client import APIClient
from agent_core.engine.backoff import Backoff
from agent_core.engine.clock import Clock, SystemClock
from agent_core.engine.deploying import Deploying
from agent_core.engine.events import RunEvents
from agent_core.engine.health import HealthServer
from agent_core.engine.heartbeat import Heartbeat
from agent_core.engine.hooks import call_each
from agent_core.engine.lease import LeaseKeeper
from agent_core.engine.metrics import AgentMetrics
from agent_core.engine.monitor import Monitor
from agent_core.engine.outcomes import OutcomeLog
from agent_core.engine.parts import PartFailed, Step, Supervisor, remaining
from agent_core.engine.poller import Poller
from agent_core.engine.pool import DeployPool
from agent_core.engine.probes import MAX_API_WAIT, Probes
from agent_core.engine.readiness import Readiness
from agent_core.engine.runlogs import RunLogs
from agent_core.engine.settings import AgentSettings
from agent_core.engine.state_writer import StateWriter
from agent_core.engine.timeouts import Timeouts
from agent_core.errors import (
    AgentError,
    APIUnavailable,
    AuthError,
    ConfigError,
    DeploymentError,
    IllegalTransition,
    NotFound,
    StartupError,
    StateUpdateConflict,
    describe_problems,
    schema_names,
)
from agent_core.masking import SecretMasker, agent_secrets
from agent_core.models import CheckResult, Deployment, FlowRun, LiveDeployment
from agent_core.plugin_settings import load_plugin_settings
from agent_core.runconfig import resolve_run_config
from agent_core.states import State

FAR_FUTURE_DAYS = 365 * 100
# The whole shutdown takes at most drain_timeout + SHUTDOWN_MARGIN seconds (plus what the
# plugins' on_shutdown hooks take): the drain gets drain_timeout, everything after it shares
# the margin, each part within its own cap below.
SHUTDOWN_MARGIN = 15.0
# The longest a clean exit waits for the API to acknowledge the agent's leave.
LEAVE_WAIT = 5.0
# How long a stopping agent keeps trying to write the run states the API did not take yet.
STATE_WRITE_WAIT = 5.0
# Caps of the other parts' stops: the poll in progress, a heartbeat or preflight hook in
# progress, a monitor round and the cancels in progress, queued run events, unsent run logs.
POLL_STOP_WAIT = 5.0
HEARTBEAT_STOP_WAIT = 5.0
READINESS_STOP_WAIT = 5.0
MONITOR_STOP_WAIT = 10.0
EVENTS_STOP_WAIT = 5.0
RUN_LOGS_STOP_WAIT = 5.0
HEALTH_STOP_WAIT = 5.0


def _nothing() -> None:
    """The start of a part that has nothing to start (its stop is what matters)."""


class Agent:
    """One running agent. Plugins receive it as the ``agent`` hook argument.

    What plugins may use: ``id``, ``name``, ``backend``, ``labels``, ``env``, ``settings``
    (:class:`AgentSettings`), ``backend_settings`` (loaded through ``settings_schema``),
    :meth:`plugin_settings`,
    ``client``, ``logger``, ``api_url``, ``api_key``, :meth:`write_run_log`, :meth:`write_output`,
    :meth:`flow_run_env`, :meth:`set_problem` / :meth:`clear_problem`, :meth:`plugin_state` and
    ``events`` (:class:`~agent_core.engine.events.RunEvents`: ``events.subscribe(callback)``).

    Read-only figures for health and metrics: ``polls``, ``poll_errors``, ``api_up``,
    ``backend_ready``, ``in_flight_count``, ``monitor.count``; :meth:`readiness` and
    :meth:`liveness` answer ``(ok, problems)``.

    Its parts, in start order (stopped in reverse): the health API, the registration (stop:
    leave), run-log shipping, the plugins (start: ``on_startup``, stop: ``on_shutdown``), run
    events, the run-state writer, the monitor, readiness checks, the heartbeat, the deployer
    (stop: the drain) and the poller.
    """

    def __init__(
        self,
        settings: AgentSettings,
        client: APIClient,
        pm: pluggy.PluginManager,
        *,
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        masker: SecretMasker | None = None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.pm = pm
        self.clock: Clock = clock or SystemClock()
        self.logger = logger or logging.getLogger(f"agent.{settings.name}")
        self.id: str = ""
        self.backend = settings.backend
        self.name = settings.name
        self.labels = sorted(set(settings.labels))
        self.env = dict(settings.env)
        self.api_url = settings.api_url or client.url
        self.api_key = settings.api_key
        self.backend_settings: Any = {}
        self._plugin_settings: dict[str, dict[str, Any]] = {}
        self.run_config_schema: Schema | None = None

        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._in_flight: set[str] = set()
        # In flight and not yet claimed: fetched early, their deploy threads wait for the start time.
        self._unclaimed: set[str] = set()
        self._in_flight_lock = threading.Lock()
        self._problems: dict[str, str] = {}
        self._plugin_state: dict[str, dict[str, Any]] = {}
        self._last_poll_attempt: float | None = None
        self._last_poll_success: float | None = None
        self._last_poll_success_time: pendulum.DateTime | None = None
        self._api_failing_since: float | None = None
        self._api_last_error = ""
        self._contacted = False
        self._api_up = False
        self._polls = 0
        self._poll_errors = 0

        self.parts = Supervisor(on_failure=self._part_failed)
        self.pool = DeployPool(settings.workers, progress=self._drain_progress)
        self.poller = Poller(self)
        # One connection per thread that may call at once: deploy workers, the poll loop and its
        # long poll, monitor, heartbeat, run logs, cancels; fewer makes calls open their own.
        client.set_pool_size(self.pool.workers + 8)
        client.stop_event = self._stopping  # a retry pause must not sleep through a stop
        self.monitor = Monitor(self)
        # What the agent sends the API (run logs, state messages) is masked like its own log.
        self.masker = masker or SecretMasker()
        self.masker.add_source(lambda: agent_secrets(settings))
        self.run_logs = RunLogs(client, settings.name, masker=self.masker, logger=self.logger)
        self.state_writer = StateWriter(self)
        # Claims stop only on a failed check (an agent driven without start(), as in tests, claims).
        self.readiness_checks = Readiness(self)
        self.heartbeat = Heartbeat(self)
        self.events = RunEvents(pm, self, clock=self.clock)
        self.health_server: HealthServer | None = None
        self.probes = Probes(self)
        # Run-event listeners (owned by the observability part): /metrics and the outcome lines.
        self.metrics = AgentMetrics(self)
        self.outcomes = OutcomeLog(self)
        self.timeouts = Timeouts(self)  # start and run timeouts (a part)
        self.lease = LeaseKeeper(self)  # a heartbeat saying the lease expired
        self.deploying = Deploying()  # claims not yet launched, handed back at the drain deadline

    # --- the public surface for plugins ---------------------------------------------------

    def write_run_log(self, flow_run: FlowRun | str, message: str, level: str = "INFO") -> None:
        """Append to a run's logs (batched, sent in the background)."""
        run_id = flow_run if isinstance(flow_run, str) else flow_run.id
        self.run_logs.write(run_id, message, level)

    def write_output(
        self, flow_run: FlowRun, message: str, level: str = "INFO", *, on_shipped: Callable[[], None] | None = None
    ) -> None:
        """Ship a line of the workload's output to the run's logs, unless output is off for the run.

        Backends use this for workload output and :meth:`write_run_log` for their own lines;
        ``[agent] ship_output`` and the run config's ``ship_output`` decide (docs/workload.md).
        ``on_shipped`` is called once the API has the line (and those before it), or at once
        when output is off: a backend moves its position in the workload's output then, so that
        lines the agent could not send before it stopped are sent by the next one.
        """
        if workload.ships_output(self, flow_run):
            self.run_logs.write(flow_run.id, message, level, on_shipped=on_shipped)
        elif on_shipped is not None:
            on_shipped()

    def flow_run_env(
        self,
        flow_run: FlowRun,
        run_config_env: Mapping[str, str | None] | None = None,
        *,
        base: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """The environment of a workload, exactly the variables to set (see :mod:`agent_core.workload`).

        ``base``: the agent process's environment, for a backend whose workloads inherit it.
        """
        return workload.flow_run_env(self, flow_run, run_config_env, base=base)

    def set_problem(self, name: str, message: str) -> None:
        """Make the health endpoint answer 503 with ``message`` until :meth:`clear_problem`."""
        if self._problems.get(name) != message:
            self.logger.warning("%s: %s", name, message)
        self._problems[name] = message

    def clear_problem(self, name: str) -> None:
        if self._problems.pop(name, None) is not None:
            self.logger.info("%s: resolved", name)

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """Extension ``name``'s settings as its ``plugin_settings_schema`` loaded them (KeyError: not loaded)."""
        return self._plugin_settings[name]

    def plugin_state(self, name: str) -> dict[str, Any]:
        """A dict a plugin may keep per-agent state in (instead of module globals)."""
        return self._plugin_state.setdefault(name, {})

    def poke(self) -> None:
        """Wake the poll loop now."""
        self._wake.set()

    def stop(self) -> None:
        """Stop polling and shut down gracefully (what SIGTERM does)."""
        self._stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # --- read-only figures (health, metrics) ----------------------------------------------

    @property
    def polls(self) -> int:
        """Queue polls made (successful or not)."""
        return self._polls

    @property
    def poll_errors(self) -> int:
        """Queue polls that failed (API unreachable, refused or malformed answers)."""
        return self._poll_errors

    @property
    def api_up(self) -> bool:
        """Whether the last call that tells (connect, poll) reached the API; False before any."""
        return self._api_up

    @property
    def backend_ready(self) -> bool:
        """Whether the last ``preflight`` passed (every check ok); False before it ran."""
        return self.readiness_checks.ready

    @property
    def in_flight_count(self) -> int:
        """Runs handed to a deploy thread and not finished with (waiting, claiming, deploying)."""
        with self._in_flight_lock:
            return len(self._in_flight)

    def liveness(self) -> tuple[bool, dict[str, str]]:
        """``(ok, problems)``: the process and its parts are alive. Not ok before the first
        successful API contact, nor while a part is dead or the poll loop stalled."""
        return self.probes.liveness()

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """``(ok, problems)``: the agent can take work now: alive, the API reachable, its last
        poll recent, the backend's preflight passing, not stopping, no plugin problem."""
        return self.probes.readiness()

    def health(self) -> dict[str, Any]:
        """The ``GET /api/health`` answer (see :mod:`agent_core.engine.probes`)."""
        return self.probes.health()

    def is_in_flight(self, run_id: str) -> bool:
        with self._in_flight_lock:
            return run_id in self._in_flight

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run until stopped, ``--max-polls`` is reached or (``--until-idle``) no work is left.

        Raises :class:`PartFailed` (after the shutdown) when a part kept dying.
        """
        restore = self._install_signal_handlers()
        parts = self.parts
        try:
            self.load_backend_contract()
            if self.settings.agent_address:
                # Before connecting: a bad address is reported at once, and health answers
                # (503, "api") while the agent waits for an absent API.
                self.health_server = HealthServer(self, self.settings.agent_address)
                parts.start(self.health_server, stop_within=HEALTH_STOP_WAIT)
                self.logger.info(
                    "Health API on %s (/api/health/live, /api/health/ready, /metrics, /api/poke)",
                    self.health_server.url,
                )
            parts.start(Step("registration", self.connect, self._leave), stop_within=LEAVE_WAIT)
            if self.stopping:
                return
            parts.start(self.run_logs, stop_within=RUN_LOGS_STOP_WAIT)
            parts.start(Step("plugins", self._start_plugins, self._stop_plugins))
            self.readiness_checks.check()
            self._banner()
            parts.start(self.events, stop_within=EVENTS_STOP_WAIT)
            parts.start(self.state_writer, stop_within=STATE_WRITE_WAIT)
            self.reconcile()
            parts.start(self.monitor, stop_within=MONITOR_STOP_WAIT)
            # Stopped before the monitor: the stops of timed-out and lost runs finish first.
            parts.start(self.timeouts, stop_within=self.settings.cancel_grace_seconds + 5)
            parts.start(Step("lease", _nothing, self.lease.stop), stop_within=self.settings.cancel_grace_seconds + 5)
            parts.start(self.readiness_checks, stop_within=READINESS_STOP_WAIT)
            parts.start(self.heartbeat, stop_within=HEARTBEAT_STOP_WAIT)
            parts.start(self.pool, stop_within=self.settings.drain_timeout)
            parts.start(self.poller, stop_within=POLL_STOP_WAIT)
            parts.watch(self._stopping)  # this thread supervises until the agent stops
        finally:
            self.shutdown()
            restore()
        if parts.failure is not None:
            raise parts.failure

    def _start_plugins(self) -> None:
        self.pm.hook.on_startup(agent=self)

    def _stop_plugins(self, deadline: float) -> None:
        # Every part that calls hooks has stopped by now (the supervisor stops in reverse).
        call_each(self.pm, "on_shutdown", agent=self)

    def _part_failed(self, failure: PartFailed) -> None:
        """A part kept dying: stop (readiness fails from now on); start() raises ``failure``."""
        self.set_problem("parts", str(failure))
        self.stop()

    def load_backend_contract(self) -> None:
        """Validate the backend's settings and fetch its run-config schema (before connecting)."""
        impls = [impl.plugin_name for impl in self.pm.hook.deploy_flow.get_hookimpls()]
        if not impls:
            raise StartupError(f"backend {self.backend!r} does not implement deploy_flow: it cannot deploy runs")
        schema = self.pm.hook.settings_schema()
        raw = self.settings.backend_settings
        if schema is None:
            if raw:
                raise ConfigError(f"backend {self.backend!r} takes no settings, but got {', '.join(sorted(raw))}")
            self.backend_settings = {}
        else:
            try:
                self.backend_settings = schema.load(raw)
            except ValidationError as exc:
                problems = describe_problems(exc.normalized_messages(), schema_names(schema))
                raise ConfigError(
                    f"invalid settings for backend {self.backend!r}: {problems} "
                    f"(set them in [backends.{self.backend}], AGENT__BACKENDS__{self.backend.upper()}__KEY "
                    "or --set KEY=VALUE)"
                ) from None
        self.run_config_schema = self.pm.hook.run_config_schema()
        self._plugin_settings = load_plugin_settings(self.pm, self.settings.plugin_settings)

    def connect(self) -> None:
        """Verify the API and the key, pull the agent config, register; waits out an absent API."""
        delay = Backoff()
        while not self.stopping:
            try:
                self.client.hello()
                self._api_failing_since = None
                self._contacted = self._api_up = True
                self.poller.learn_features()
                break
            except APIUnavailable as exc:
                if self._api_failing_since is None:
                    self._api_failing_since = self.clock.monotonic()
                self._api_last_error = str(exc)
                self._api_up = False
                wait = max(delay.next_delay(False), 1.0)
                self.logger.warning("API at %s unreachable (%s); retrying in %.0fs", self.client.url, exc.detail, wait)
                self.clock.wait(self._stopping, wait)
        if self.stopping:
            return
        try:
            info = self.client.auth_info()
        except AuthError as exc:
            raise StartupError(f"the API refused the agent's key: {exc}. Pass a runner key with --key") from None
        if info["role"] not in ("runner", "admin"):
            raise StartupError(
                f"the key has role {info['role']!r}; an agent needs a 'runner' key "
                "(create one with 'agent keys create --role runner')"
            )
        if self.settings.agent_config_id:
            self._apply_agent_config(self.settings.agent_config_id)
        agent = self.client.register_agent(
            name=self.name,
            backend=self.backend,
            labels=self.labels,
            agent_config_id=self.settings.agent_config_id or None,
            heartbeat_period=self.settings.heartbeat_period,  # the server sizes the lease on it
        )
        self.id = agent["id"]
        self.client.set_agent_id(self.id)
        self._warn_if_name_in_use(agent.get("previous_heartbeat"))
        # The seed's "test query": a queue read proves the role can poll.
        self.client.get_queue(self.labels, self.clock.now(), limit=1)
        self._note_api_success()

    def _warn_if_name_in_use(self, previous_heartbeat: str | None) -> None:
        if not previous_heartbeat:
            return
        seen = pendulum.parse(previous_heartbeat)
        assert isinstance(seen, pendulum.DateTime)
        ago = (self.clock.now() - seen).total_seconds()
        if ago < max(2 * self.settings.heartbeat_period, 60.0):
            self.logger.warning(
                "an agent named %r sent a heartbeat %.0fs ago: if it is still running, the two share one "
                "identity (and re-attach to each other's runs); give each agent its own --name",
                self.name,
                ago,
            )

    def _apply_agent_config(self, config_id: str) -> None:
        try:
            config = self.client.get_agent_config(config_id)
        except NotFound:
            raise StartupError(f"agent config {config_id!r} does not exist on the API") from None
        settings = config["settings"]
        if "labels" in settings:
            self.labels = sorted(set(settings["labels"]))
        if "env" in settings:
            self.env = {**self.env, **settings["env"]}
        self.logger.info("Applied agent config %s (%s)", config["name"], config_id)

    def preflight(self) -> list[CheckResult]:
        def raised(plugin: str, exc: Exception) -> list[CheckResult]:
            # A check that cannot tell is not a pass: readiness fails until it answers.
            return [CheckResult(f"{plugin} preflight", False, f"raised {type(exc).__name__}: {exc}")]

        results: list[CheckResult] = []
        for batch in call_each(self.pm, "preflight", on_error=raised, agent=self):
            results.extend(batch or [])
        return results

    def _banner(self) -> None:
        labels = ", ".join(self.labels) or "(none: only unlabelled runs)"
        where = "embedded API" if self.client.embedded else self.client.url
        self.logger.info(
            "agent %s %s (id %s) started: backend %s, labels %s, API %s, %d deploy workers",
            __version__,
            self.name,
            self.id,
            self.backend,
            labels,
            where,
            self.pool.workers,
        )
        self.logger.info("Waiting for flow runs...")

    def reconcile(self) -> None:
        """Re-attach to the workloads of runs this agent deployed before a restart."""
        try:
            mine = self.client.list_flow_runs(
                agent_id=self.id,
                states=[State.SUBMITTED.value, State.RUNNING.value, State.CANCELLING.value],
            )
        except APIUnavailable as exc:
            self.logger.warning("could not look for runs to re-attach: %s", exc)
            return
        runs = {r["id"]: FlowRun.from_api(r) for r in mine}
        live: list[LiveDeployment] = self.pm.hook.list_deployments(agent=self) or []
        attached: set[str] = set()
        for item in live:
            run = runs.get(item.flow_run_id)
            if run is not None and run.attempt == item.attempt:
                self.monitor.track(run, item.deployment)
                attached.add(run.id)
                self.events.emit(run, run.state, run.state, "re-attached", item.deployment)
        for run in runs.values():
            if run.id in attached:
                continue
            if run.deployment:
                deployment = Deployment.from_dict(run.deployment)
                self.monitor.track(run, deployment)
                attached.add(run.id)
                self.events.emit(run, run.state, run.state, "re-attached", deployment)
            else:
                # Claimed, never launched (no workload is listed): any agent may run it.
                self.hand_back(run, f"Agent {self.name} restarted before deploying this run: handed back")
        if attached:
            self.logger.info("Re-attached to %d running deployment(s)", len(attached))
            for run_id in attached:
                self.write_run_log(run_id, f"Agent {self.name} restarted and re-attached to this run")

    def heartbeat_once(self) -> None:
        """The API's part of a heartbeat (the heartbeat part then calls the hooks)."""
        try:
            answer = self.client.agent_heartbeat(self.id)
        except APIUnavailable as exc:
            self.logger.debug("API heartbeat failed: %s", exc)
        except Exception:
            self.logger.exception("API heartbeat failed")
        else:
            self.lease.on_heartbeat(answer)
            for data in answer.get("cancelling", []):
                self.monitor.request_cancel(FlowRun.from_api(data))

    # --- the poll loop --------------------------------------------------------------------

    def poll_loop(self) -> None:
        """Poll until stopped or ``--max-polls`` (see :mod:`agent_core.engine.poller`)."""
        self.poller.loop()

    def poll_once(self, wait: float = 0.0) -> bool:
        """Ask for ready runs (the server waiting up to ``wait`` s) and submit the new ones;
        True if any was submitted."""
        return self.poller.poll_once(wait)

    def accept_runs(self, runs: list[FlowRun]) -> bool:
        """Hand the runs not yet in flight to deploy threads; True if any was new.

        A run the server claimed for this agent (Submitted, ours) is deployed at once; a
        Scheduled one waits for its start time on its thread, then is claimed.
        """
        mine = [run for run in runs if run.state == State.SUBMITTED and run.agent_id == self.id]
        # Not ready (or stopping): Scheduled runs are left for healthy agents.
        scheduled = [run for run in runs if run.state == State.SCHEDULED] if self.may_claim() else []
        with self._in_flight_lock:
            new_mine = [run for run in mine if run.id not in self._in_flight]
            new_scheduled = [run for run in scheduled if run.id not in self._in_flight]
            self._in_flight.update(run.id for run in new_mine + new_scheduled)
            self._unclaimed.update(run.id for run in new_scheduled)
        if new_mine or new_scheduled:
            self.logger.info("Found %d flow run(s) to submit for execution.", len(new_mine) + len(new_scheduled))
        skipped = len(runs) - len(new_mine) - len(new_scheduled)
        if skipped:
            self.logger.debug("%d run(s) already being submitted", skipped)
        for run in new_mine:
            self.events.emit(run, State.SCHEDULED, State.SUBMITTED, f"Submitted by agent {self.name}")
            self.pool.submit(self._deploy_claimed_task, run)
        for run in new_scheduled:
            self.pool.submit(self._deploy, run)
        return bool(new_mine or new_scheduled)

    def is_handled(self, run_id: str) -> bool:
        """Whether a deploy thread or the monitor has the run."""
        return self.is_in_flight(run_id) or self.monitor.is_tracked(run_id)

    def holding_early_runs(self) -> bool:
        """Whether runs fetched before their start time wait on deploy threads, unclaimed."""
        with self._in_flight_lock:
            return bool(self._unclaimed)

    def may_claim(self) -> bool:
        """Whether the agent takes new runs now: not while stopping, nor while the backend's
        preflight fails (the runs stay Scheduled for healthy agents)."""
        return not self.stopping and not self.readiness_checks.failing

    def _idle(self) -> bool:
        if self.pool.pending or self.monitor.count:
            return False
        try:
            upcoming = self.client.get_queue(self.labels, self.clock.now().add(days=FAR_FUTURE_DAYS), limit=1)
        except AgentError:
            return False
        return not upcoming

    def _note_api_success(self) -> None:
        if self._api_failing_since is not None:
            down = self.clock.monotonic() - self._api_failing_since
            self.logger.info("API reachable again after %.0fs", down)
        self._api_failing_since = None
        self._contacted = self._api_up = True
        self._last_poll_success = self.clock.monotonic()
        self._last_poll_success_time = self.clock.now()

    def _note_api_failure(self, exc: APIUnavailable) -> None:
        now = self.clock.monotonic()
        if self._api_failing_since is None:
            self._api_failing_since = now
        self._api_last_error = str(exc)
        self._api_up = False
        since = f"{now - self._last_poll_success:.0f} s ago" if self._last_poll_success is not None else "never"
        self.logger.warning("API unavailable (%s); last success %s; backing off", exc, since)

    # --- deploying one run ----------------------------------------------------------------

    def _deploy(self, run: FlowRun) -> None:
        try:
            delay = (run.scheduled_start_time - self.clock.now()).total_seconds()
            if delay > 0:
                self.logger.debug("Waiting %.2fs to deploy flow run %s on time", delay, run.id)
                if self.clock.wait(self._stopping, delay):
                    return  # stopping: leave it Scheduled for another agent
            if self.stopping:
                return
            if not self.may_claim():
                return  # the backend stopped being ready meanwhile: leave it Scheduled
            claimed = self.claim(run)
            with self._in_flight_lock:
                self._unclaimed.discard(run.id)
            if claimed is not None:
                self.deploy_claimed(claimed)
        except Exception:
            self.logger.exception("Unexpected error while deploying flow run %s", run.id)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(run.id)
                self._unclaimed.discard(run.id)

    def _deploy_claimed_task(self, run: FlowRun) -> None:
        """A deploy thread's task for a run the server claimed for this agent."""
        try:
            if self.stopping:
                self.hand_back(run, f"Agent {self.name} is shutting down: handed back before deploying")
                return
            self.deploy_claimed(run)
        except Exception:
            self.logger.exception("Unexpected error while deploying flow run %s", run.id)
        finally:
            with self._in_flight_lock:
                self._in_flight.discard(run.id)

    def claim(self, run: FlowRun) -> FlowRun | None:
        """Scheduled -> Submitted with the version read. None if another agent won (silently)."""
        try:
            data = self.client.set_flow_run_state(
                run.id, version=run.version, state=State.SUBMITTED.value, message=f"Submitted by agent {self.name}"
            )
        except (StateUpdateConflict, IllegalTransition) as exc:
            # Maybe a long poll claimed it for us meanwhile (the server claims runs as they fall due).
            claimed = self._claim_outcome(run)
            if claimed is None:
                self.logger.debug("Flow run %s not claimed: %s", run.id, exc)
                return None
        except NotFound as exc:
            self.logger.debug("Flow run %s not claimed: %s", run.id, exc)
            return None
        except APIUnavailable:
            claimed = self._claim_outcome(run)
        else:
            claimed = FlowRun.from_api(data)
        if claimed is not None:
            self.events.emit(claimed, run.state, State.SUBMITTED, f"Submitted by agent {self.name}")
        return claimed

    def _claim_outcome(self, run: FlowRun) -> FlowRun | None:
        """The claim's answer was lost: read the run back to learn whether it is ours."""
        backoff = Backoff()
        while not self.stopping:
            try:
                current = FlowRun.from_api(self.client.get_flow_run(run.id))
            except APIUnavailable:
                self.clock.wait(self._stopping, min(backoff.next_delay(False), MAX_API_WAIT))
                continue
            except NotFound:
                return None
            ours = (
                current.state == State.SUBMITTED and current.agent_id == self.id and current.version == run.version + 1
            )
            return current if ours else None
        return None

    def deploy_claimed(self, run: FlowRun) -> None:
        self.logger.info("Deploying flow run %s (%s)", run.id, run.flow_name)
        self.deploying.begin(run)
        try:
            run_config = resolve_run_config(run.run_config, self.backend, self.run_config_schema)
            result = self.pm.hook.deploy_flow(flow_run=run, run_config=run_config, agent=self)
            if result is None:
                raise DeploymentError(f"backend {self.backend!r} returned nothing from deploy_flow")
            deployment = result if isinstance(result, Deployment) else Deployment(self.backend, "", str(result))
        except Exception as exc:
            if self.deploying.end(run.id):
                return  # handed back at the drain deadline meanwhile: not this agent's to fail
            message = str(exc) or exc.__class__.__name__
            self.logger.error(
                "Deployment of flow run %s failed: %s", run.id, message, exc_info=not isinstance(exc, AgentError)
            )
            self.write_run_log(run.id, message, "ERROR")
            self.state_writer.write(run, State.FAILED, message)
            return
        if self.deploying.end(run.id):
            self.deploying.withdraw(self, run, deployment)  # handed back at the drain deadline meanwhile
            return
        # Recorded even without a platform id (a backend returning a plain string), so that a
        # restarted agent knows this run was deployed and does not fail it.
        try:
            if not (deployment.running and self._record_running(run, deployment)):
                self.client.set_deployment(run.id, deployment.to_dict())
        except StateUpdateConflict as exc:
            # The run is no longer this agent's (handed back, or recovered after a lapsed lease):
            # what the deploy started would be a second live attempt.
            self.logger.warning("The API refused the deployment of run %s: %s", run.id, exc)
            self.deploying.withdraw(self, run, deployment)
            return
        except AgentError as exc:
            self.logger.warning("Could not record the deployment of run %s: %s", run.id, exc)
        run.deployment = deployment.to_dict()
        self.logger.info("Completed deployment of flow run %s", run.id)
        self.write_run_log(run.id, f"Submitted for execution: {deployment}")
        self.monitor.track(run, deployment)

    def _record_running(self, run: FlowRun, deployment: Deployment) -> bool:
        """Submitted -> Running with the deployment recorded, in one request, for a workload
        running as its deploy returned. False where it was not written (an older server; the
        run changed meanwhile, e.g. asked to cancel): the deployment is then recorded alone and
        the monitor marks Running. Raises what ``set_deployment`` would on a lost connection."""
        if "state_deployment" not in self.poller.features or run.state != State.SUBMITTED:
            return False
        try:
            updated = self.mark_running(run, deployment, record_deployment=True)
        except (StateUpdateConflict, IllegalTransition):
            return False  # set_deployment says whether the run is still this agent's
        run.version, run.state = updated.version, updated.state
        return True

    def mark_running(self, run: FlowRun, deployment: Deployment, *, record_deployment: bool = False) -> FlowRun:
        """``run`` (at its version) -> Running, with ``deployment`` recorded too when asked; the
        updated run, whose event goes out. Raises the client's errors (a conflict, the API away)."""
        data = self.client.set_flow_run_state(
            run.id,
            version=run.version,
            state=State.RUNNING.value,
            message="Running",
            deployment=deployment.to_dict() if record_deployment else None,
        )
        updated = FlowRun.from_api(data)
        self.events.emit(updated, run.state, updated.state, "Running", deployment)
        return updated

    def hand_back(self, run: FlowRun, message: str) -> bool:
        """Submitted -> Scheduled: a run claimed but never launched goes back to any agent.

        False if it could not be handed back (another change came first, or the API is away:
        then the server's lease recovery, or this agent's leave, puts it back).
        """
        try:
            data = self.client.set_flow_run_state(
                run.id, version=run.version, state=State.SCHEDULED.value, message=message
            )
        except (StateUpdateConflict, IllegalTransition, NotFound) as exc:
            self.logger.debug("Run %s not handed back: %s", run.id, exc)
            return False
        except APIUnavailable as exc:
            self.logger.warning("Could not hand run %s back (%s); the API recovers it with the lease", run.id, exc)
            return False
        updated = FlowRun.from_api(data)
        old = run.state
        run.version, run.state = updated.version, updated.state
        self.logger.info("Handed flow run %s back: %s", run.id, message)
        self.events.emit(run, old, State.SCHEDULED, message)
        return True

    def set_final_state(self, run: FlowRun, state: State, message: str) -> bool:
        """Move ``run`` to ``state``, re-reading it on a conflict. True once nothing is left to do."""
        message = self.masker.mask(message)  # a deploy error may quote a URL with its password
        for _ in range(5):
            try:
                data = self.client.set_flow_run_state(run.id, version=run.version, state=state.value, message=message)
            except StateUpdateConflict:
                try:
                    fresh = FlowRun.from_api(self.client.get_flow_run(run.id))
                except (APIUnavailable, NotFound):
                    return False
                if fresh.state.is_final or fresh.attempt != run.attempt:
                    return True
                run.version, run.state = fresh.version, fresh.state
                continue
            except IllegalTransition as exc:
                self.logger.debug("Run %s: %s", run.id, exc)
                return True
            except NotFound:
                return True
            except APIUnavailable as exc:
                self.logger.warning("Could not mark run %s %s (%s); trying again", run.id, state.value, exc)
                return False
            updated = FlowRun.from_api(data)
            old = run.state
            # The event is the state this agent set: a failed run with retries left comes back
            # Scheduled already (the API's retry, not reported), and its Failed must still be told.
            run.version, run.state = updated.version, state
            self.events.emit(run, old, state, message)
            run.state = updated.state
            return True
        return False

    # --- health and shutdown --------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every part in reverse start order, all within one budget, and say what is left."""
        self._stopping.set()
        self._wake.set()
        began = time.monotonic()
        self.parts.stop(began + self.settings.drain_timeout + SHUTDOWN_MARGIN)
        self._report_unwatched()
        self.logger.info("Agent %s stopped (shutdown took %.1fs)", self.name, time.monotonic() - began)

    def _drain_progress(self, left: float) -> None:
        """What the drain waits for, when it starts and every few seconds (``left`` 0: time is up)."""
        deploying, monitored = self.pool.pending, self.monitor.count
        if left <= 0:
            self.logger.error(
                "%d deployment(s) still running after the %.0fs drain timeout: their runs are handed "
                "back (Scheduled), and whatever such a deploy still starts is stopped",
                deploying,
                self.settings.drain_timeout,
            )
            self.deploying.hand_back_all(
                self, f"Agent {self.name} stopped before deploying this run (drain timeout): handed back"
            )
            return
        self.logger.info(
            "draining: %d run(s) still deploying, %d monitored (left running), %.0fs left",
            deploying,
            monitored,
            left,
        )

    def _report_unwatched(self) -> None:
        """Name the workloads that keep running with nobody watching them, and how to re-attach."""
        left = self.monitor.tracked()
        if not left:
            return
        workloads = "; ".join(f"run {item.run.id} ({item.run.flow_name}): {item.deployment}" for item in left)
        self.logger.warning(
            "%d workload(s) keep running unwatched: %s. An agent started again under the name %r "
            "re-attaches to them (within its lease; after it the API fails their runs)",
            len(left),
            workloads,
            self.name,
        )

    def _leave(self, deadline: float) -> None:
        """Tell the API this agent left (its undeployed runs go back at once), waiting until ``deadline``."""
        if not self.id or "leave" not in self.poller.features:
            return
        wait = remaining(deadline)

        def leave() -> None:
            try:
                answer = self.client.leave_agent(self.id)
            except AgentError as exc:
                self.logger.warning("Could not tell the API the agent left (%s): its lease runs out instead", exc)
                return
            handed = answer.get("handed_back") or []
            if handed:
                self.logger.info("The API handed %d undeployed run(s) back for other agents", len(handed))

        # On a thread: an unanswering API must not hold the exit past its budget.
        thread = threading.Thread(target=leave, name="leave", daemon=True)
        thread.start()
        thread.join(wait)
        if thread.is_alive():
            self.logger.warning("The API did not answer the agent's leave within %.0fs: exiting anyway", wait)

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, _frame: FrameType | None) -> None:
            if self.stopping:
                self.logger.warning("Second %s: exiting now", signal.Signals(signum).name)
                os._exit(128 + signum)
            self.logger.info(
                "%s received: no new claims; draining deployments (up to %.0fs, signal again to exit now)",
                signal.Signals(signum).name,
                self.settings.drain_timeout,
            )
            self.stop()

        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, old in previous.items():
                signal.signal(sig, old)

        return restore
