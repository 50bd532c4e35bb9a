"""``create_app``: the Falcon WSGI app of the orchestration API, wired to a store."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from typing import Any

import falcon

from agent_core.errors import APIError
from agent_core.server.endpoints import ENDPOINTS
from agent_core.server.openapi import openapi_document
from agent_core.server.routing import Authenticator, Endpoint, make_resource
from agent_core.server.storage import Store
from agent_core.server.ui import register_ui

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 2 * 1024 * 1024


class _OpenAPIResource:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document


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


def create_app(
    store: Store,
    *,
    auth_required: bool = False,
    default_tenant: str = "default",
    max_body: int = DEFAULT_MAX_BODY,
) -> falcon.App:
    """The API app over ``store``; ``auth_required`` makes every non-public endpoint need a key."""
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    app.req_options.auto_parse_form_urlencoded = False
    app.req_options.keep_blank_qs_values = True
    # Later handlers take precedence for matching types, so the generic one goes first.
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(APIError, _api_error)

    auth = Authenticator(store, required=auth_required, default_tenant=default_tenant)
    by_path: dict[str, list[Endpoint]] = defaultdict(list)
    for endpoint in ENDPOINTS:
        by_path[endpoint.path].append(endpoint)
    for path, endpoints in by_path.items():
        app.add_route(path, make_resource(endpoints, store, auth, max_body))
    app.add_route("/api/openapi.json", _OpenAPIResource(openapi_document(ENDPOINTS)))
    # The dashboard: `/` and `/ui/...`, same keys as the API (server/ui/).
    register_ui(app, store, auth)
    return app
