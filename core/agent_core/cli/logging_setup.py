"""How ``agent`` logs: the level, the format (text for people, JSON lines for machines), colours.

One place for it: ``agent start``, ``agent server start`` and ``agent ui`` call
:func:`configure_logging` with the effective ``[agent] log_level`` / ``log_format`` (flag >
``AGENT__AGENT__LOG_LEVEL`` > config file > default); the short commands log warnings only,
to stderr, unless a level is asked for.

Every handler made here masks secrets (``agent_core.masking``): URL passwords by their shape
and the configuration's secret values wherever they appear, in messages and tracebacks alike;
in the long-running commands an exception that ends a thread is logged through the same
handler, masked, not printed raw.

Standard library only, so that importing it costs nothing on the CLI's cheap paths.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from typing import IO, Any

from agent_core.errors import ConfigError
from agent_core.masking import MaskSecrets, SecretMasker

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Libraries whose INFO lines say nothing an operator needs.
QUIET_LOGGERS = ("urllib3", "waitress")

# A run id where a message names one ("flow run 7bad186a-...", "run 7bad186a-..."), for
# records that do not carry it as ``extra={"run_id": ...}``.
RUN_ID_IN_MESSAGE = re.compile(
    r"\brun\s+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b", re.IGNORECASE
)

# ANSI styles of the level name on a terminal: what needs a look stands out.
LEVEL_STYLES = {
    "DEBUG": "\x1b[2m",  # dim
    "WARNING": "\x1b[33;1m",  # bold yellow
    "ERROR": "\x1b[31;1m",  # bold red
    "CRITICAL": "\x1b[41;97;1m",  # white on red
}
RESET = "\x1b[0m"


def parse_level(value: str, source: str = "log level") -> int:
    """``"debug"`` / ``"INFO"`` ... as a :mod:`logging` level; anything else is a :class:`ConfigError`."""
    name = str(value).strip().upper()
    if name == "WARN":
        name = "WARNING"
    if name not in LEVELS:
        raise ConfigError(f"invalid {source} {value!r}; use one of {', '.join(level.lower() for level in LEVELS)}")
    return logging.getLevelName(name)


def parse_format(value: str, source: str = "log format") -> str:
    name = str(value).strip().lower()
    if name not in FORMATS:
        raise ConfigError(f"invalid {source} {value!r}; use text or json")
    return name


def use_color(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (https://no-color.org)."""
    environ = os.environ if environ is None else environ
    if environ.get("NO_COLOR", ""):
        return False
    if environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def run_id_of(record: logging.LogRecord) -> str | None:
    explicit = getattr(record, "run_id", None) or getattr(record, "flow_run_id", None)
    if explicit:
        return str(explicit)
    match = RUN_ID_IN_MESSAGE.search(record.getMessage())
    return match.group(1) if match else None


class TextFormatter(logging.Formatter):
    """``2026-01-31T09:30:00Z WARNING agent.worker-1: message``, in UTC; the level coloured on a TTY."""

    converter = time.gmtime

    def __init__(self, *, color: bool = False) -> None:
        super().__init__(TEXT_FORMAT, datefmt=DATE_FORMAT)
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        if not self.color:
            return super().format(record)
        style = LEVEL_STYLES.get(record.levelname)
        if style is None:
            return super().format(record)
        original = record.levelname
        # Pad before styling so that the columns stay aligned.
        record.levelname = f"{style}{original:<7}{RESET}"
        try:
            text = super().format(record)
        finally:
            record.levelname = original
        if record.levelno >= logging.WARNING:
            head, sep, message = text.partition(": ")
            text = f"{head}{sep}{style}{message}{RESET}" if sep else text
        return text


class JSONFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, ``run_id`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        moment = time.gmtime(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        run_id = run_id_of(record)
        if run_id:
            entry["run_id"] = run_id
        if record.threadName and record.threadName != "MainThread":
            entry["thread"] = record.threadName
        # exc_text first: MaskSecrets leaves the masked traceback there.
        if record.exc_text:
            entry["exception"] = record.exc_text
        elif record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def make_handler(
    fmt: str, stream: IO[str], *, color: bool | None = None, masker: SecretMasker | None = None
) -> logging.Handler:
    """A handler writing ``fmt`` to ``stream`` that masks secrets (URL passwords always, and
    the values ``masker`` knows)."""
    handler = logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JSONFormatter())
    else:
        handler.setFormatter(TextFormatter(color=use_color(stream) if color is None else color))
    handler.addFilter(MaskSecrets(masker))
    return handler


def configure_logging(
    level: str | int = "INFO",
    fmt: str = "text",
    stream: IO[str] | None = None,
    masker: SecretMasker | None = None,
) -> None:
    """Replace the root logger's handlers with one of ``fmt`` at ``level`` on ``stream`` (stdout).

    :param masker: the secrets to mask besides URL passwords (the CLI passes the configuration's).
    """
    numeric = level if isinstance(level, int) else parse_level(level)
    handler = make_handler(parse_format(fmt), stream or sys.stdout, masker=masker)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LOGGERS:
        # Their warnings still show, even with -v: their debug lines drown the agent's.
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))


def log_thread_exceptions() -> None:
    """Route exceptions that end a thread to the log (masked like every line), for the
    long-running commands; Python's default prints them raw on stderr."""
    threading.excepthook = log_thread_exception


def log_thread_exception(args: threading.ExceptHookArgs) -> None:
    """An exception that ends a thread, logged (so masked like every line) instead of printed raw."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "a thread"
    exc_info = (args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback)
    logging.getLogger("agent").error("Thread %s ended with an unexpected error", name, exc_info=exc_info)
