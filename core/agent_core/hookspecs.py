"""Every hook an agent plugin can implement: the contract between the core and its plugins.

A *backend* (entry-point group ``agent.backends``, exactly one loaded per agent) decides where
runs execute; it must implement ``deploy_flow`` and may implement the other ``firstresult``
backend hooks. An *extension* (group ``agent.plugins``, all loaded unless disabled) may
implement the hooks marked "all": they are called on every plugin and their results collected.

Hooks are called with keyword arguments; an implementation may accept any subset of them.
Threads: the *main* thread runs start-up, the poll loop and shutdown; the *deploy* threads (a
bounded pool) claim and deploy runs; the *monitor* thread watches deployments and handles
cancellation; the *heartbeat* thread runs every ``heartbeat_period`` seconds; the *run-events*
thread tells plugins about state changes (``flow_run_state_changed``). A backend's hooks
can therefore be called concurrently and must guard any state they share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from marshmallow import Schema

    from agent_core.context import AgentContext
    from agent_core.models import CheckResult, Deployment, DeploymentStatus, FlowRun, LiveDeployment
    from agent_core.states import State

PROJECT_NAME = "agent"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


# --- start-up -------------------------------------------------------------------------------


@hookspec(firstresult=True)
def settings_schema() -> Schema | None:
    """The marshmallow schema of the backend's settings.

    Called once on the main thread at start-up (and by ``agent doctor``), before the API
    connection is made and before ``on_startup``. Settings come from ``[backends.NAME]`` in the config file,
    ``AGENT__BACKENDS__NAME__KEY`` environment variables and ``--set KEY=VALUE``, and are loaded
    through this schema; the result is ``agent.settings``. An unknown or invalid setting is a
    start-up error naming the key. Without an implementation, any setting is an error.

    :return: a ``marshmallow.Schema`` instance, or ``None`` to pass.
    """


@hookspec
def plugin_settings_schema() -> tuple[str, Schema] | None:
    """The name and marshmallow schema of an extension's settings (``[plugins.NAME]``).

    Called on every plugin, on the main thread at start-up (and by ``agent doctor``), before
    the API connection is made and before ``on_startup``. Settings come from ``[plugins.NAME]``
    in the config file, ``AGENT__PLUGINS__NAME__KEY`` environment variables and
    ``--set plugins.NAME.KEY=VALUE``, are loaded through the schema, and are then
    ``agent.plugin_settings(NAME)``. An unknown or invalid setting is a start-up error naming
    the extension and the key; settings for an extension without this hook are an error too.
    A backend takes its settings through ``settings_schema`` instead.

    :return: ``(name, schema)`` with ``name`` the extension's name (its entry-point name: the
        ``NAME`` of ``[plugins.NAME]``) and a ``marshmallow.Schema`` instance, or ``None`` when
        the plugin has no settings. Two plugins declaring one name are a start-up error.
    """


@hookspec(firstresult=True)
def run_config_schema() -> Schema | None:
    """The marshmallow schema of the run-config type this backend accepts.

    Called once on the main thread at start-up. A run's ``run_config`` of the backend's own
    type (``{"type": "docker", ...}``) is loaded through it; a ``universal`` run config is
    converted (its ``env`` and ``labels`` loaded through it); a run with no run config gets
    ``schema.load({})``; any other type fails the run with a message naming both types.

    :return: a ``marshmallow.Schema`` instance, or ``None`` to pass (the run config is then
        handed to the backend as the raw dict, and only ``universal`` and the backend's own
        type are accepted).
    """


@hookspec
def on_startup(agent: AgentContext) -> None:
    """Prepare the plugin for work.

    Called on the main thread after the API connection is verified, the agent registered and
    its settings loaded, before the first poll.

    :param agent: the running agent (:class:`agent_core.AgentContext`: ``agent.settings``,
        ``agent.plugin_settings(name)``, ``agent.client``, ``agent.logger``...).
    :raise Exception: aborts start-up; the message is shown to the operator and the agent exits
        non-zero. Raise :class:`agent_core.errors.StartupError` with the fix in the message.
    """


@hookspec(firstresult=True)
def list_deployments(agent: AgentContext) -> list[LiveDeployment] | None:
    """The live workloads this backend started, found by the names or labels it gave them.

    Called once on the main thread at start-up, after ``on_startup``. For every workload whose
    run is still Submitted, Running or Cancelling the agent re-attaches (monitors it again)
    instead of orphaning it; a workload whose run is already final is left for ``heartbeat``
    to reap.

    :return: a list of :class:`~agent_core.models.LiveDeployment`, or ``None`` when the backend
        cannot enumerate its workloads (runs it deployed earlier are then only re-attached
        through the deployment recorded on the run).
    """


@hookspec
def preflight(agent: AgentContext) -> list[CheckResult] | None:
    """Checks that the plugin can do its work: credentials, daemon reachable, image present.

    Called on the main thread by ``agent doctor`` and at start-up, after ``on_startup``, then
    every ``readiness_interval`` seconds on the agent's ``readiness`` thread. While any check
    fails the agent claims no runs and ``GET /api/health/ready`` answers 503. Must not raise:
    report a failure as a failed check (an exception is logged, counts as a failed check named
    ``PLUGIN preflight``, and the other plugins' checks still run). Keep it quick.

    :return: a list of :class:`~agent_core.models.CheckResult`; failed checks are printed by
        ``agent doctor``, logged as warnings once per change, and stop claims until they pass.
    """


# --- polling and deployment -----------------------------------------------------------------


@hookspec(firstresult=True)
def deploy_flow(flow_run: FlowRun, run_config: Any, agent: AgentContext) -> Deployment | str | None:
    """Start ``flow_run`` on the backend's platform. Required of every backend.

    Called on a deploy thread after the run is claimed (its state is Submitted) and on time.
    Name or tag the platform object with ``flow_run.key`` (run id and attempt) so that a
    restarted agent finds it again (``list_deployments``) and a repeated launch of the same
    attempt is detected instead of duplicated.

    :param flow_run: the claimed run, with its flow's command and parameters.
    :param run_config: the run config resolved through ``run_config_schema``.
    :param agent: the agent; ``agent.flow_run_env(flow_run, run_config_env)`` gives the
        environment every workload gets (``docs/workload.md``), and
        ``agent.write_output(flow_run, line)`` ships a line of the workload's output (queued;
        pass ``on_shipped=`` to learn when the API has it).
    :return: a :class:`~agent_core.models.Deployment` (recorded on the run and logged as
        "Submitted for execution: ..."; with ``running=True`` the run is marked Running in the
        same request) or a plain description string. ``None`` (no
        implementation answered) fails the run.
    :raise Exception: the run is marked Failed; the exception's message goes to its logs.
    """


@hookspec
def flow_run_env(flow_run: FlowRun, agent: AgentContext) -> dict[str, str | None] | None:
    """Extra environment variables for the workload of ``flow_run`` (secrets from a vault...).

    Called on every plugin, on the deploy thread, when the backend asks for the workload's
    environment (``agent.flow_run_env``, which backends call in ``deploy_flow`` before they
    start the workload): after the run is claimed and its run config resolved. A backend may
    ask more than once for one run, so answer the same way each time. The results are merged
    after the agent's ``env`` and before the run config's ``env`` (the run's own variables
    still win; see ``docs/workload.md``); where two plugins give the same variable, the one
    called first wins (``tryfirst=True`` to take precedence). ``AGENT__*`` names are dropped.

    :param flow_run: the claimed run.
    :param agent: the agent.
    :return: a mapping of variable names to strings; a ``None`` value removes the variable
        (whatever a lower layer set). ``None`` instead of a mapping adds nothing.
    :raise Exception: the run is not started and is marked Failed; the message (naming the
        plugin) goes to its logs. Anything but a mapping of strings is such an error too.
    """


@hookspec(firstresult=True)
def check_deployment(flow_run: FlowRun, deployment: Deployment, agent: AgentContext) -> DeploymentStatus | None:
    """How the workload is doing.

    Called on the monitor thread every ``monitor_interval`` seconds for each run this agent
    deployed and has not seen finish. The core turns the answer into states: ``running`` marks
    the run Running, ``exited`` with code 0 Success and any other code Failed (with the code,
    the reason and the output tail from ``deployment_logs``); ``missing`` (the workload is
    gone without a trace) marks it Failed. ``pending`` changes nothing.

    :return: a :class:`~agent_core.models.DeploymentStatus`, or ``None`` if the backend cannot
        tell (final states are then left to the workload itself).
    :raise Exception: logged; the check is retried on the next round.
    """


@hookspec(firstresult=True)
def deployment_logs(flow_run: FlowRun, deployment: Deployment, agent: AgentContext, tail: int) -> list[str] | None:
    """The last ``tail`` lines of the workload's output.

    Called on the monitor thread when a deployment fails, so the lines can be attached to the
    run's Failed message and logs.

    :return: the lines (oldest first), or ``None`` when the backend keeps no output.
    """


@hookspec(firstresult=True)
def cancel_deployment(
    flow_run: FlowRun, deployment: Deployment, agent: AgentContext, grace_seconds: float
) -> bool | None:
    """Stop the workload of a run that was asked to cancel (state Cancelling).

    Called on a thread of its own (one per run, named ``cancel-<id>``), started by the monitor
    or heartbeat thread when the API lists a run this agent deployed as Cancelling. Stop
    politely (SIGTERM, ``docker stop``), and force it after ``grace_seconds``. May block up
    to the grace period. The core marks the run Cancelled when this returns ``True`` and calls
    ``check_deployment`` for it no more: ship what the workload wrote while stopping
    (``agent.write_output``) before returning.

    The core also calls it to stop a run whose start or run timeout ran out (thread
    ``timeout-<id>``; the run is then marked Failed, not Cancelled), a run no longer this
    agent's after its lease was lost (thread ``lost-<id>``; the state is left as the API set
    it), and what a deploy started for a run handed back at the drain deadline.

    :return: ``True`` once the workload is stopped, ``False`` if it could not be stopped (the
        core retries on the next round), ``None`` to pass.
    """


@hookspec
def heartbeat(agent: AgentContext) -> None:
    """Periodic work: check platform health, reap finished workloads, report metrics.

    Called on the heartbeat thread every ``heartbeat_period`` seconds, on every plugin, also
    while the agent drains; never once ``on_shutdown`` has been called. An exception that is not
    an ``Exception`` (``SystemExit``) ends the heartbeat thread: it is restarted, and a fourth
    death within a minute stops the agent.
    To make the health endpoint report a problem, call ``agent.set_problem(name, message)``
    (and ``agent.clear_problem(name)`` once it is gone).

    :raise Exception: logged with its traceback; the heartbeat loop goes on.
    """


# --- run events -----------------------------------------------------------------------------


@hookspec
def flow_run_state_changed(
    flow_run: FlowRun,
    old_state: State | None,
    new_state: State,
    message: str,
    deployment: Deployment | None,
    agent: AgentContext,
) -> None:
    """A run's state changed under this agent's hands: notifications, audit trails, metrics.

    Called on every plugin (backends and extensions alike), on the agent's *run-events* thread,
    in the order the changes happened (per run and overall), for every state the engine sets or
    learns: the claim (Scheduled -> Submitted), a failed deploy (-> Failed), Running as the
    monitor learns it, the final states (Success, Failed, Cancelled), a run handed back
    (Submitted -> Scheduled), a run re-attached after a restart (``old_state == new_state``,
    message ``"re-attached"``) and a run lost with the agent's lease. Changes made by others
    (a user cancelling a Scheduled run, the API retrying a Failed run) are not reported.

    The engine only queues the event: the call happens after the state was written, and never
    holds up a deploy, the monitor or the poll loop. Events queued at shutdown are delivered
    before ``on_shutdown``, within the shutdown budget.

    :param flow_run: a copy of the run as the engine knew it after the change (its ``state``
        is ``new_state``, its ``version`` the one the API answered).
    :param old_state: the state before, or ``None`` when the engine did not know it.
    :param new_state: the state after.
    :param message: the state's message ("Exited with code 3", "Submitted by agent NAME"...).
    :param deployment: what ``deploy_flow`` returned for the run, or ``None`` before a deploy.
    :param agent: the agent.
    :raise Exception: logged with the plugin's name; the other plugins are still called and the
        run goes on. An implementation taking more than 5 s is logged as slow: it delays only
        the later events, so hand long work to a thread of your own.
    """


# --- shutdown -------------------------------------------------------------------------------


@hookspec
def on_shutdown(agent: AgentContext) -> None:
    """Release what the plugin holds (clients, threads, temporary files).

    Called on the main thread once the poll loop has stopped, in-flight deployments are
    drained (or the drain timeout passed), and the heartbeat, readiness checks, monitor and
    run events have stopped (no other hook of this agent starts after it); also after a
    failed start-up once ``on_startup`` was called (even if it raised). Running workloads are
    left alone: a restarted agent re-attaches to them. Keep it short: it counts against the
    shutdown's budget (``drain_timeout`` + 15 s) and nothing can cut it short.

    :raise Exception: logged; the other plugins' ``on_shutdown`` still run.
    """
