"""Logging for ``agent server start``: one format, and no password of a URL in any line."""

from __future__ import annotations

import logging

from agent_core.masking import MaskSecrets


class MaskPasswords(MaskSecrets):
    """Rewrites each record so that ``scheme://user:PASSWORD@host`` shows ``***`` for the password.

    On the handler, so it covers every logger (ours, SQLAlchemy's, waitress's) and the
    tracebacks of logged exceptions. (The CLI's handlers also mask the configuration's secret
    values: ``agent_core.masking``.)
    """


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
        if not any(isinstance(f, MaskSecrets) for f in handler.filters):
            handler.addFilter(MaskPasswords())
