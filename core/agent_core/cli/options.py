"""Help texts that name a setting's environment variable and default, and the plain help format.

Help is click's plain format (``rich_markup_mode=None``): rich markup would eat every
``[bracket]`` of a help text (``[env AGENT__API__URL]``), and it is also the cheaper path for
``agent --help``.
"""

from __future__ import annotations

from typing import Any

# Every Typer of the CLI is made with these: plain help, no rich tracebacks.
TYPER_OPTIONS: dict[str, Any] = {
    "rich_markup_mode": None,
    "pretty_exceptions_enable": False,
    "context_settings": {"help_option_names": ["-h", "--help"], "max_content_width": 120},
}


def env_name(dotted: str) -> str:
    """``agent.drain_timeout`` -> ``AGENT__AGENT__DRAIN_TIMEOUT``."""
    return "AGENT__" + "__".join(part.upper() for part in dotted.split("."))


def setting_help(text: str, dotted: str, default: str | None = None) -> str:
    """``text [env AGENT__S__K; config [s] k; default: D]`` for an option that sets ``s.k``."""
    from agent_core.config import DEFAULTS  # no heavy imports: config is the standard library

    section, key = dotted.split(".")
    if default is None:
        value = DEFAULTS[section][key]
        default = repr(value) if value in ("", [], {}) else str(value)
    return f"{text} [env {env_name(dotted)}; config [{section}] {key}; default: {default}]"
