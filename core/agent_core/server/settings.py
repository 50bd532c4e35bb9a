"""``ServerSettings``: what the API server takes from the ``[server]`` configuration section."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agent_core.errors import ConfigError

# The longest a POST /api/queue may wait (GET /api/hello answers it as max_wait_seconds).
MAX_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class ServerSettings:
    agent_lease_seconds: float = 180.0
    cancelling_timeout_seconds: float = 300.0
    long_poll_slots: int = 100
    access_log: bool = True
    metrics_token: str = ""

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> ServerSettings:
        settings = cls(
            agent_lease_seconds=float(section.get("agent_lease_seconds", cls.agent_lease_seconds)),
            cancelling_timeout_seconds=float(section.get("cancelling_timeout_seconds", cls.cancelling_timeout_seconds)),
            long_poll_slots=int(section.get("long_poll_slots", cls.long_poll_slots)),
            access_log=bool(section.get("access_log", cls.access_log)),
            metrics_token=str(section.get("metrics_token", cls.metrics_token)),
        )
        for name in ("agent_lease_seconds", "cancelling_timeout_seconds"):
            if not getattr(settings, name) > 0:
                raise ConfigError(f"server.{name} must be a positive number of seconds, not {getattr(settings, name)}")
        if settings.long_poll_slots < 0:
            raise ConfigError(f"server.long_poll_slots must be 0 or more, not {settings.long_poll_slots}")
        return settings
