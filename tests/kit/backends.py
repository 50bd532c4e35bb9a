"""Backends for testing the conformance kit itself: the local backend's hooks, and variants each
broken in one way a user would notice.

:class:`LocalLike` hands every hook to ``agent_plugin_local.hooks`` unchanged (the control);
each subclass breaks one thing, the way a real backend gets it wrong.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from agent_core import AgentContext, Deployment, DeploymentStatus, FlowRun, hookimpl
from agent_plugin_local import hooks as local


class LocalLike:
    """The local backend, hook for hook, as an in-test plugin."""

    name = "kit-local"

    @hookimpl
    def settings_schema(self) -> Any:
        return local.settings_schema()

    @hookimpl
    def run_config_schema(self) -> Any:
        return local.run_config_schema()

    @hookimpl
    def on_startup(self, agent: AgentContext) -> None:
        local.on_startup(agent)

    @hookimpl
    def list_deployments(self, agent: AgentContext) -> Any:
        return local.list_deployments(agent)

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: AgentContext) -> Deployment:
        return local.deploy_flow(flow_run, run_config, agent)

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext) -> DeploymentStatus:
        return local.check_deployment(flow_run, deployment, agent)

    @hookimpl
    def deployment_logs(self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext, tail: int) -> Any:
        return local.deployment_logs(flow_run, deployment, agent, tail)

    @hookimpl
    def cancel_deployment(
        self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext, grace_seconds: float
    ) -> bool:
        return local.cancel_deployment(flow_run, deployment, agent, grace_seconds)

    @hookimpl
    def on_shutdown(self, agent: AgentContext) -> None:
        local.on_shutdown(agent)


class CancelStopsNothing(LocalLike):
    """Says the workload is stopped, and leaves it running."""

    @hookimpl
    def cancel_deployment(
        self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext, grace_seconds: float
    ) -> bool:
        return True


class Muted:
    """An agent whose ``write_output`` drops the line: what a backend that never ships output does."""

    def __init__(self, agent: AgentContext) -> None:
        self._agent = agent

    def write_output(self, flow_run: FlowRun, message: str, level: str = "INFO") -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)


class NoOutputShipping(LocalLike):
    """Runs workloads and reports their exit, but never ships a line of their output."""

    @hookimpl
    def check_deployment(self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext) -> DeploymentStatus:
        return local.check_deployment(flow_run, deployment, Muted(agent))

    @hookimpl
    def cancel_deployment(
        self, flow_run: FlowRun, deployment: Deployment, agent: AgentContext, grace_seconds: float
    ) -> bool:
        return local.cancel_deployment(flow_run, deployment, Muted(agent), grace_seconds)


class DoubleLaunch(LocalLike):
    """Starts a new workload on every deploy_flow call, never looking for the one it started already."""

    def __init__(self) -> None:
        self._launches = itertools.count(1001)

    @hookimpl
    def deploy_flow(self, flow_run: FlowRun, run_config: Any, agent: AgentContext) -> Deployment:
        # A fresh name each time (as a backend naming workloads by a uuid would): nothing to collide with.
        return local.deploy_flow(dataclasses.replace(flow_run, attempt=next(self._launches)), run_config, agent)
