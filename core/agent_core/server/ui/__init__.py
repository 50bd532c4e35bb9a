"""The dashboard: server-rendered pages over the API's store, at ``/`` and under ``/ui/``.

No build step and nothing from a CDN: HTML rendered here (every value escaped), one small
script and one stylesheet shipped in ``static/``. The same keys as the API: a login form puts
the key in an HttpOnly session cookie; with auth off (a loopback server, ``agent ui``) no key
is needed, as for the API. Every role may look; actions (cancelling a run) need ``admin``, so
a ``user`` key gives a read-only dashboard.

``register_ui(app, store, auth, lease_seconds=...)`` adds the routes; ``create_app`` calls it.
"""

from __future__ import annotations

from agent_core.server.ui.routes import register_ui

__all__ = ["register_ui"]
