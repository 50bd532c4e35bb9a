"""What every command shares: the effective configuration, a client for the API, and logging."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

from agent_core.cli.logging_setup import configure_logging

if TYPE_CHECKING:
    from agent_core.client import APIClient
    from agent_core.config import Config


@dataclass
class CLIState:
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _config: Config | None = None
    _client: APIClient | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            # Imported here: `agent --help` and `agent --version` never read the configuration.
            from agent_core.config import load_config

            self._config = load_config(self.config_file, overrides=self.overrides)
            self._log_short_command()
        return self._config

    @property
    def client(self) -> APIClient:
        if self._client is None:
            from agent_core.client import client_from_config

            self._client = client_from_config(self.config)
        return self._client

    def _log_short_command(self) -> None:
        """Commands that answer and exit log to stderr (stdout may be JSON), warnings only unless asked."""
        assert self._config is not None
        asked = self._config.sources.get("agent.log_level", "default") != "default"
        level = self._config.get("agent.log_level") if asked else "WARNING"
        configure_logging(level, self._config.get("agent.log_format"), sys.stderr)

    def start_logging(self) -> None:
        """Long-running commands (agent start, server start, ui) log to stdout at the configured level."""
        configure_logging(self.config.get("agent.log_level"), self.config.get("agent.log_format"), sys.stdout)


def state(ctx: typer.Context) -> CLIState:
    root = ctx.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj
