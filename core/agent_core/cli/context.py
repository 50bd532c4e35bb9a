"""What every command shares: the effective configuration and a client for the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

from agent_core.client import APIClient, client_from_config
from agent_core.config import Config, load_config


@dataclass
class CLIState:
    config_file: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _config: Config | None = None
    _client: APIClient | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_file, overrides=self.overrides)
        return self._config

    @property
    def client(self) -> APIClient:
        if self._client is None:
            self._client = client_from_config(self.config)
        return self._client


def state(ctx: typer.Context) -> CLIState:
    root = ctx.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj
