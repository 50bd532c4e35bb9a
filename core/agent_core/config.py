"""Layered configuration: defaults < config file < environment < command-line flags.

The file is the first that exists of ``agent.toml`` in the working directory,
``$AGENT_HOME/config.toml`` and ``/etc/agent/config.toml`` (``--config`` or ``AGENT_CONFIG``
name another). Environment variables are
``AGENT__SECTION__KEY`` (``AGENT__API__URL``); backend settings live in ``[backends.NAME]``,
``AGENT__BACKENDS__NAME__KEY`` and ``--set KEY=VALUE``; an extension's in ``[plugins.NAME]``,
``AGENT__PLUGINS__NAME__KEY`` and ``--set plugins.NAME.KEY=VALUE``. Both are checked by the
plugin's own schema when the agent starts, not here.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_core.errors import ConfigError
from agent_core.masking import is_secret as is_secret  # re-exported: plugins' tests name it here
from agent_core.masking import mask, mask_passwords, secret_values

ENV_PREFIX = "AGENT__"

DEFAULTS: dict[str, dict[str, Any]] = {
    "api": {
        "url": "",  # empty: the embedded API on $AGENT_HOME/agent.db
        "key": "",
        "timeout": 10.0,
        "retries": 3,
    },
    "agent": {
        "name": "agent",
        "labels": [],
        "env": {},
        "agent_config_id": "",
        "agent_address": "",
        "heartbeat_period": 60.0,
        "monitor_interval": 1.0,
        "prefetch_seconds": 10.0,
        "long_poll_seconds": 30.0,  # how long one poll may wait on the server (0: poll with backoff)
        "readiness_interval": 30.0,  # how often preflight runs; while it fails the agent claims nothing
        "max_workers": 0,  # 0: min(32, cpus + 4), as the seed
        "drain_timeout": 30.0,
        "cancel_grace_seconds": 10.0,
        "start_timeout_seconds": 300.0,  # deployed but not Running within this: Failed (0: off)
        "run_timeout_seconds": 0.0,  # max runtime unless the run config's timeout_seconds says (0: none)
        "stall_threshold": 60.0,
        "disable_plugins": [],
        "ship_output": True,  # workload output to the run's logs (docs/workload.md)
        "workload_api_key": "",  # AGENT_API_KEY for workloads
        "pass_api_key": False,  # give workloads the agent's own key (when no workload_api_key)
        "log_level": "INFO",  # DEBUG, INFO, WARNING, ERROR; -v is DEBUG
        "log_format": "text",  # text (for people) or json (one object per line)
    },
    "server": {
        "host": "127.0.0.1",
        "port": 4200,
        "db": "",  # empty: sqlite under $AGENT_HOME
        "auth": False,
        "threads": 8,  # for ordinary requests; waiting long polls have their own (long_poll_slots)
        "agent_lease_seconds": 180.0,
        "cancelling_timeout_seconds": 300.0,
        "long_poll_slots": 100,
        "access_log": True,
        "metrics_token": "",
    },
    "backends": {},
    "plugins": {},
}

#: sections whose tables are per plugin (``[backends.NAME]``, ``[plugins.NAME]``): their keys are
#: the plugin's to check (its schema), not this module's
PLUGIN_SECTIONS = ("backends", "plugins")


SYSTEM_CONFIG_FILE = Path("/etc/agent/config.toml")


def agent_home() -> Path:
    return Path(os.environ.get("AGENT_HOME") or Path.home() / ".agent").expanduser()


def default_db_url() -> str:
    return f"sqlite:///{agent_home() / 'agent.db'}"


@dataclass
class Config:
    values: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)
    file: Path | None = None
    # secrets(), kept until the next set(): the log filter asks for it on every log line.
    _secrets: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def section(self, name: str) -> dict[str, Any]:
        return self.values.setdefault(name, {})

    def get(self, dotted: str) -> Any:
        section, _, key = dotted.partition(".")
        return self.values[section][key]

    def backend_settings(self, backend: str) -> dict[str, Any]:
        return dict(self.values["backends"].get(backend, {}))

    def plugin_settings(self) -> dict[str, dict[str, Any]]:
        """Every ``[plugins.NAME]`` table as given (raw: each extension's schema loads its own)."""
        return {name: dict(table) for name, table in self.values["plugins"].items()}

    @property
    def db_url(self) -> str:
        return self.values["server"]["db"] or default_db_url()

    def set(self, dotted: str, value: Any, source: str) -> None:
        parts = dotted.split(".")
        if parts[0] in PLUGIN_SECTIONS:
            if len(parts) != 3:
                raise ConfigError(f"plugin settings are {parts[0]}.NAME.KEY, not {dotted!r}")
            settings = self.values[parts[0]].setdefault(parts[1], {})
            # Re-set at the end: the order of the keys is the order of the sources that set them last,
            # for backends whose settings exclude each other ("the later source wins").
            settings.pop(parts[2], None)
            settings[parts[2]] = value
        else:
            section, key = parts
            self.values[section][key] = _coerce(dotted, DEFAULTS[section][key], value)
        self.sources[dotted] = source
        self._secrets = None

    def effective(self, *, masked: bool = True) -> dict[str, Any]:
        """The values; ``masked``: every secret shown as ``***`` (nothing of it) and every URL
        with its password masked, wherever it is (``[server] db``, an ``[agent] env`` value...)."""
        out = copy.deepcopy(self.values)
        if masked:
            _mask_tree(out)
        return out

    def secrets(self) -> list[str]:
        """Every secret value of the configuration, for the log filter to mask wherever it appears.

        ``values`` changes only through :meth:`set`, which forgets the answer kept here.
        """
        if self._secrets is None:
            self._secrets = secret_values(self.values)
        return list(self._secrets)


def _mask_tree(tree: dict[str, Any], inside_secret: bool = False) -> None:
    for key, value in tree.items():
        secret = inside_secret or is_secret(key)
        if isinstance(value, dict):
            _mask_tree(value, secret)
        elif isinstance(value, list):
            tree[key] = [mask(v) if secret else _mask_text(v) for v in value]
        elif secret:
            tree[key] = mask(value)
        else:
            tree[key] = _mask_text(value)


def _mask_text(value: Any) -> Any:
    return mask_passwords(value) if isinstance(value, str) else value


def _coerce(name: str, default: Any, value: Any) -> Any:
    """Give ``value`` (often a string from the environment) the type of the default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true or false")
        if isinstance(default, int):
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            return int(value)
        if isinstance(default, float):
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)
        if isinstance(default, list):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if not isinstance(value, list):
                raise ValueError("expected a list")
            return [str(v) for v in value]
        if isinstance(default, dict):
            if isinstance(value, str):
                value = json.loads(value) if value.strip() else {}
            if not isinstance(value, dict):
                raise ValueError("expected a table of KEY = VALUE")
            # null stays None: in `[agent] env` it removes the variable from workloads.
            return {str(k): None if v is None else str(v) for k, v in value.items()}
        if not isinstance(value, str | int | float):
            raise ValueError("expected a string")
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid value for {name}: {value!r} ({exc})") from None


def config_search_path() -> list[Path]:
    """Where the config file is looked for when none is named, first match wins."""
    return [Path.cwd() / "agent.toml", agent_home() / "config.toml", SYSTEM_CONFIG_FILE]


def find_config_file(explicit: str | os.PathLike[str] | None = None, search: list[Path] | None = None) -> Path | None:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("AGENT_CONFIG")
    if env:
        return find_config_file(env)
    for candidate in config_search_path() if search is None else search:
        if candidate.is_file():
            return candidate
    return None


def load_config(
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    search: list[Path] | None = None,
) -> Config:
    """Build the effective configuration; ``overrides`` are CLI flags as ``section.key``.

    ``search`` replaces :func:`config_search_path` (tests).
    """
    environ = os.environ if environ is None else environ
    config = Config(values=copy.deepcopy(DEFAULTS))
    path = find_config_file(config_file, search)
    if path is not None:
        import tomllib  # only when there is a file: `agent --help` reads none

        config.file = path
        try:
            data = tomllib.loads(path.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        _apply_file(config, data, str(path))
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        _check_known(dotted, f"environment variable {name}")
        config.set(dotted, value, f"env {name}")
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        _check_known(dotted, "flag")
        config.set(dotted, value, "flag")
    return config


def _apply_file(config: Config, data: dict[str, Any], source: str) -> None:
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: {section!r} must be a [section]")
        if section in PLUGIN_SECTIONS:
            for plugin, settings in table.items():
                if not isinstance(settings, dict):
                    raise ConfigError(f"{source}: {section}.{plugin} must be a [{section}.{plugin}] table")
                for key, value in settings.items():
                    config.set(f"{section}.{plugin}.{key}", value, source)
            continue
        for key, value in table.items():
            dotted = f"{section}.{key}"
            _check_known(dotted, source)
            config.set(dotted, value, source)


def _check_known(dotted: str, source: str) -> None:
    parts = dotted.split(".")
    if parts[0] in PLUGIN_SECTIONS:
        if len(parts) != 3 or not all(parts):
            kind = "backend" if parts[0] == "backends" else "extension"
            raise ConfigError(f"{source}: {kind} settings are named {parts[0]}.NAME.KEY, not {dotted!r}")
        return
    if len(parts) != 2 or parts[0] not in DEFAULTS:
        sections = ", ".join(DEFAULTS)
        raise ConfigError(f"{source}: unknown setting {dotted!r}; sections are {sections}")
    if parts[1] not in DEFAULTS[parts[0]]:
        keys = ", ".join(DEFAULTS[parts[0]])
        raise ConfigError(f"{source}: unknown setting {dotted!r}; [{parts[0]}] takes {keys}")
