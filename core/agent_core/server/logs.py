"""Logging for ``agent server start``: one format, and no password of a URL in any line."""

from __future__ import annotations

import logging

from agent_core.server.storage.db import mask_passwords


class MaskPasswords(logging.Filter):
    """Rewrites each record so that ``scheme://user:PASSWORD@host`` shows ``***`` for the password.

    On the handler, so it covers every logger (ours, SQLAlchemy's, waitress's) and the
    tracebacks of logged exceptions.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_passwords(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_passwords(record.exc_text)
        return True


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr at ``level`` unless logging is set up already (as ``basicConfig`` does);
    either way every handler of the root logger masks passwords."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)
    for handler in root.handlers:
        if not any(isinstance(f, MaskPasswords) for f in handler.filters):
            handler.addFilter(MaskPasswords())
