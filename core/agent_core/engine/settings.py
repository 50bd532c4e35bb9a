"""The agent's settings, from the ``[agent]`` section of the configuration and ``agent start`` flags."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any


def default_workers() -> int:
    # The seed's choice (Python 3.8's ThreadPoolExecutor default), for stable results.
    return min(32, (os.cpu_count() or 1) + 4)


@dataclass
class AgentSettings:
    backend: str
    name: str = field(default_factory=socket.gethostname)
    labels: list[str] = field(default_factory=list)
    env: dict[str, str | None] = field(default_factory=dict)
    agent_config_id: str = ""
    agent_address: str = ""
    max_polls: int | None = None
    until_idle: bool = False
    heartbeat_period: float = 60.0
    monitor_interval: float = 1.0
    prefetch_seconds: float = 10.0
    # Against a server with long_poll: how long one poll waits there for a run (capped by the
    # server's max_wait_seconds); 0 polls with the 0.25 -> 10 s backoff. Not used with
    # --max-polls or --until-idle, whose polls answer at once.
    long_poll_seconds: float = 30.0
    readiness_interval: float = 30.0
    max_workers: int = 0
    drain_timeout: float = 30.0
    cancel_grace_seconds: float = 10.0
    # Timeouts (engine/timeouts.py): deployed but not Running within this many seconds -> Failed;
    # Running longer than the run config's timeout_seconds, else this -> Failed. 0: off.
    start_timeout_seconds: float = 300.0
    run_timeout_seconds: float = 0.0
    stall_threshold: float = 60.0
    # How the agent logs (set up by the CLI, cli/logging_setup.py); also the workloads' default level.
    log_level: str = "INFO"
    log_format: str = "text"
    backend_settings: dict[str, Any] = field(default_factory=dict)
    # [plugins.NAME] tables, raw: each extension's schema loads its own (agent_core.plugin_settings).
    plugin_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The workload contract (docs/workload.md): output shipping, and the key workloads get.
    ship_output: bool = True
    workload_api_key: str = ""
    pass_api_key: bool = False
    # What workloads are told (AGENT_API_URL / AGENT_API_KEY): the API the agent itself uses.
    api_url: str = ""
    api_key: str = ""

    @property
    def workers(self) -> int:
        return self.max_workers or default_workers()

    @classmethod
    def from_config(cls, config: Any, backend: str, **overrides: Any) -> AgentSettings:
        section = dict(config.section("agent"))
        section.pop("disable_plugins", None)
        if section.get("name") in ("", "agent"):
            # Unless the operator chose a name: one per host and backend, so that a local and a
            # docker agent on one machine do not share an identity.
            section["name"] = f"{socket.gethostname()}-{backend}"
        values: dict[str, Any] = {
            **section,
            "backend": backend,
            "backend_settings": config.backend_settings(backend),
            "plugin_settings": config.plugin_settings(),
            "api_url": config.section("api")["url"],
            "api_key": config.section("api")["key"],
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
