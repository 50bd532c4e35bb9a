"""Who is looking: the key in the session cookie, checked against the store on every request.

The cookie holds the key itself (HttpOnly, SameSite=Strict, no expiry: it ends with the
browser session), so revoking a key ends its dashboard sessions at once and several API
servers behind one address accept each other's sessions. Forms carry a CSRF token derived
from the session, which another site cannot compute.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

import falcon

from agent_core.server.routing import Authenticator
from agent_core.server.storage import Principal

COOKIE = "agent_session"
# Without a session (auth off) the token still has to come from a page this process served.
_PROCESS_SECRET = secrets.token_bytes(32)


@dataclass(frozen=True)
class Viewer:
    principal: Principal
    session: str  # the key in the cookie, "" when auth is off and none was given

    @property
    def may_act(self) -> bool:
        """Actions (cancel) are for admins: a user key gives a read-only dashboard."""
        return self.principal.role == "admin"

    @property
    def csrf(self) -> str:
        secret = self.session.encode() if self.session else _PROCESS_SECRET
        return hmac.new(secret, b"agent-ui-csrf", hashlib.sha256).hexdigest()[:32]

    def describe(self, tenant: str) -> str:
        access = "" if self.may_act else ", read-only"
        return f"{self.principal.role} · tenant {tenant}{access}"


class LoginRequired(Exception):
    """No valid session while auth is required: the page answers with a redirect to the login form."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def viewer(req: falcon.Request, auth: Authenticator) -> Viewer:
    key = req.get_cookie_values(COOKIE)
    session = key[0] if key else ""
    if session:
        principal = auth.store.authenticate(session)
        if principal is None:
            raise LoginRequired("The key of this session is unknown or revoked: log in again.")
        return Viewer(principal, session)
    if auth.required:
        raise LoginRequired()
    return Viewer(Principal(tenant_id=auth.default_tenant, role="admin"), "")


def check_csrf(form: dict[str, str], current: Viewer) -> bool:
    """Whether the form carries this session's token."""
    return hmac.compare_digest(form.get("csrf", ""), current.csrf)


def set_session(resp: falcon.Response, req: falcon.Request, key: str) -> None:
    resp.set_cookie(
        COOKIE, key, path="/", http_only=True, secure=req.scheme == "https", same_site="Strict", max_age=None
    )


def clear_session(resp: falcon.Response) -> None:
    resp.unset_cookie(COOKIE, path="/")
