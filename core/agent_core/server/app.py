"""``create_app``: the Falcon WSGI app of the orchestration API, wired to a store.

Every route is added in :func:`_add_routes`, the one place to look for what the app serves.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Any

import falcon
import sqlalchemy as sa

from agent_core.errors import APIError, AuthError
from agent_core.masking import same_secret
from agent_core.server.endpoints import ENDPOINTS
from agent_core.server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from agent_core.server.observe import RequestObserver
from agent_core.server.openapi import openapi_document
from agent_core.server.routing import Authenticator, Endpoint, make_resource
from agent_core.server.service import APIService
from agent_core.server.storage import Store
from agent_core.server.storage.db import describe_url, mask_passwords
from agent_core.server.ui import register_ui

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 2 * 1024 * 1024

# Database errors that mean "our query is wrong" (a bug, 500); every other one is the
# storage being unreachable, full, read-only or overloaded (503).
_BUG_ERRORS = (sa.exc.IntegrityError, sa.exc.DataError, sa.exc.ProgrammingError, sa.exc.NotSupportedError)


class _OpenAPIResource:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


class _MetricsResource:
    """``GET /metrics``: open when the server runs without auth (loopback only); with auth it
    needs ``[server] metrics_token`` or an admin key as a bearer token. A key that is sent is
    checked either way, as on every endpoint."""

    def __init__(self, service: APIService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._check(req)
        resp.content_type = METRICS_CONTENT_TYPE
        resp.data = self.service.metrics.render()

    def _check(self, req: falcon.Request) -> None:
        token = self.service.settings.metrics_token
        header = req.get_header("Authorization") or ""
        scheme, _, sent = header.partition(" ")
        if token and scheme.lower() == "bearer" and same_secret(sent.strip(), token):
            return
        if not header and not self.auth.required:
            return
        principal = self.auth.principal(req)
        if self.auth.required and principal.role != "admin":
            raise AuthError("Forbidden", "GET /metrics needs an admin key or the server's metrics_token", 403)


def _api_error(req: falcon.Request, resp: falcon.Response, exc: APIError, params: dict[str, Any]) -> None:
    resp.status = exc.status or 400
    resp.media = {"error": exc.error, "detail": exc.detail}


def _http_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError, params: dict[str, Any]) -> None:
    resp.status = exc.status
    detail = exc.description
    if exc.status == falcon.HTTP_404 and not detail:
        detail = f"no endpoint {req.method} {req.path}; see /api/openapi.json"
    if exc.status == falcon.HTTP_405 and not detail:
        detail = f"{req.path} does not accept {req.method}"
    resp.media = {"error": re.sub(r"^\d{3} ", "", exc.title or "Error"), "detail": detail}
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]) -> None:
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = {
        "error": "Internal server error",
        "detail": "this is a bug; the server log has the traceback",
    }


def _storage_error(store: Store) -> Any:
    def handle(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict[str, Any]) -> None:
        if isinstance(exc, _BUG_ERRORS):
            _unexpected(req, resp, exc, params)
            return
        where = describe_url(store.engine.url)
        reason = mask_passwords(str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300])
        log.warning("storage unavailable on %s %s: %s", req.method, req.path, reason)
        resp.status = falcon.HTTP_503
        resp.set_header("Retry-After", "5")
        resp.media = {"error": "Storage unavailable", "detail": f"the database {where} failed: {reason}"}

    return handle


def create_app(
    store: Store,
    *,
    auth_required: bool = False,
    default_tenant: str = "default",
    max_body: int = DEFAULT_MAX_BODY,
    service: APIService | None = None,
) -> falcon.App:
    """The API app over ``store``; ``auth_required`` makes every non-public endpoint need a key.

    ``service`` holds the server's long-poll wake-ups, lease sweep and metrics; without one
    (the embedded API) a service is made that nobody starts: no sweep, wake-ups on first use.
    """
    service = service or APIService(store)
    app = falcon.App(
        media_type=falcon.MEDIA_JSON,
        middleware=[RequestObserver(service.metrics, log_access=service.settings.access_log)],
    )
    app.req_options.auto_parse_form_urlencoded = False
    app.req_options.keep_blank_qs_values = True
    # Later handlers take precedence for matching types, so the generic one goes first.
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(sa.exc.DBAPIError, _storage_error(store))
    app.add_error_handler(sa.exc.TimeoutError, _storage_error(store))
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(APIError, _api_error)
    auth = Authenticator(store, required=auth_required, default_tenant=default_tenant)
    _add_routes(app, service, auth, max_body)
    return app


def _add_routes(app: falcon.App, service: APIService, auth: Authenticator, max_body: int) -> None:
    by_path: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in ENDPOINTS:
        by_path[endpoint.path].append(endpoint)
    for path, endpoints in by_path.items():
        app.add_route(path, make_resource(endpoints, service, auth, max_body))
    app.add_route("/api/openapi.json", _OpenAPIResource(openapi_document(ENDPOINTS, auth_required=auth.required)))
    app.add_route("/metrics", _MetricsResource(service, auth))
    # The dashboard: `/` and `/ui/...`, same keys as the API (server/ui/).
    register_ui(app, service.store, auth, lease_seconds=service.settings.agent_lease_seconds)
