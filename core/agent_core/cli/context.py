"""What every command shares: the effective configuration, a client for the API, and logging."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from agent_core.client import APIClient
    from agent_core.config import Config
    from agent_core.masking import SecretMasker


@dataclass
class CLIState:
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _config: Config | None = None
    _client: APIClient | None = None
    _masker: SecretMasker | None = None

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

    @property
    def masker(self) -> SecretMasker:
        """Masks the configuration's secrets in every log line and error, including those set
        after logging started (``agent start --key``): it reads them from the config each time."""
        if self._masker is None:
            from agent_core.masking import SecretMasker

            self._masker = SecretMasker(sources=[lambda: self.config.secrets()])
        return self._masker

    def _log_settings(self) -> tuple[int, str]:
        """The validated ``[agent] log_level`` and ``log_format``; a bad value names where it came from."""
        from agent_core.cli.logging_setup import parse_format, parse_level

        config = self.config
        sources = {name: config.sources.get(f"agent.{name}", "default") for name in ("log_level", "log_format")}
        level = parse_level(config.get("agent.log_level"), f"[agent] log_level (from {sources['log_level']})")
        fmt = parse_format(config.get("agent.log_format"), f"[agent] log_format (from {sources['log_format']})")
        return level, fmt

    def _log_short_command(self) -> None:
        """Commands that answer and exit log to stderr (stdout may be JSON), warnings only unless asked."""
        import logging

        from agent_core.cli.logging_setup import configure_logging

        assert self._config is not None
        level, fmt = self._log_settings()
        asked = self._config.sources.get("agent.log_level", "default") != "default"
        configure_logging(level if asked else logging.WARNING, fmt, sys.stderr, self.masker)

    def start_logging(self) -> None:
        """Long-running commands (agent start, server start, ui) log to stdout at the configured level."""
        from agent_core.cli.logging_setup import configure_logging, log_thread_exceptions

        level, fmt = self._log_settings()
        configure_logging(level, fmt, sys.stdout, self.masker)
        log_thread_exceptions()


def state(ctx: typer.Context) -> CLIState:
    root = ctx.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj
