"""A small declarative layer over Falcon: each endpoint states its path, roles and schemas once.

``app.py`` builds Falcon resources from these declarations and ``openapi.py`` documents the
same declarations, so the document cannot drift from what the server accepts.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import falcon
from marshmallow import Schema, ValidationError

from agent_core.errors import AuthError, BadRequest, PayloadTooLarge
from agent_core.server.storage import Principal, Store

if TYPE_CHECKING:
    from agent_core.server.service import APIService

ALL_ROLES = frozenset({"runner", "user", "admin"})
AGENT_ID_HEADER = "X-Agent-Id"
MAX_AGENT_ID = 36


@dataclass
class Call:
    """Everything a handler needs: the server's parts, the caller, and the validated input."""

    service: APIService
    principal: Principal
    body: dict[str, Any]
    query: dict[str, Any]
    params: dict[str, str]
    agent_id: str | None

    @property
    def store(self) -> Store:
        return self.service.store

    @property
    def tenant(self) -> str:
        return self.principal.tenant_id


Handler = Callable[[Call], Any]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    summary: str
    handler: Handler
    roles: frozenset[str] | None = ALL_ROLES  # None: public, no key needed
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    status: int = 200
    response: str = ""  # the answer's schema, a name in answers.SCHEMAS
    also: tuple[int, ...] = ()  # other success statuses (POST /api/flow-runs: 200 for a known key)
    agent_header: str = ""  # what the X-Agent-Id header means here, for the document
    tags: tuple[str, ...] = field(default=())


class Authenticator:
    """Maps the ``Authorization`` header to a :class:`Principal`.

    With ``required`` off (the embedded API, a loopback server without ``--auth``), a request
    without a key acts as admin of the default tenant; a key that is sent is still checked.
    """

    def __init__(self, store: Store, *, required: bool, default_tenant: str) -> None:
        self.store = store
        self.required = required
        self.default_tenant = default_tenant

    def principal(self, req: falcon.Request) -> Principal:
        header = req.get_header("Authorization")
        if not header:
            if self.required:
                raise AuthError(
                    "Missing API key",
                    "send 'Authorization: Bearer KEY'; an admin creates keys with 'agent keys create --role ROLE'",
                    401,
                )
            return Principal(tenant_id=self.default_tenant, role="admin")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("Malformed Authorization header", "expected 'Authorization: Bearer KEY'", 401)
        principal = self.store.authenticate(token.strip())
        if principal is None:
            raise AuthError("Invalid API key", "the key is unknown or revoked; ask an admin for a new one", 401)
        return principal


def read_json(req: falcon.Request, max_body: int) -> Any:
    length = req.content_length
    if length is not None and length > max_body:
        raise PayloadTooLarge("Request body too large", f"{length} bytes; the limit is {max_body}", 413)
    raw = req.bounded_stream.read(max_body + 1)
    if len(raw) > max_body:
        raise PayloadTooLarge("Request body too large", f"the limit is {max_body} bytes", 413)
    if not raw.strip():
        return {}
    content_type = (req.content_type or "application/json").split(";")[0].strip().lower()
    if content_type not in ("application/json", "text/json") and not content_type.endswith("+json"):
        raise BadRequest(
            "Unsupported media type",
            f"send JSON with Content-Type: application/json, not {content_type}",
            415,
        )
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Malformed JSON", f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("Malformed JSON", f"nested deeper than {MAX_DEPTH} levels") from None
    check_text(data, "body")
    return data


MAX_DEPTH = 64


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_text(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what JSON can carry but storage cannot: NUL characters, lone surrogates, deep nesting."""
    if depth > MAX_DEPTH:
        raise BadRequest("Malformed JSON", f"{where}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise BadRequest("Invalid request", {where: "contains a NUL character"})
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadRequest("Invalid request", {where: "contains a lone surrogate (not valid Unicode)"}) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where, depth + 1)
            check_text(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{where}[{index}]", depth + 1)


# Building a schema instance costs more than loading a small body with it, so each thread
# keeps one per schema class (kept per thread: a Schema instance makes no promise to be shared).
_schemas = threading.local()


def _schema(schema: type[Schema]) -> Schema:
    instances: dict[type[Schema], Schema] = _schemas.__dict__.setdefault("instances", {})
    instance = instances.get(schema)
    if instance is None:
        instance = instances[schema] = schema()
    return instance


def load(schema: type[Schema], data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise BadRequest("Invalid request", {where: "must be a JSON object"})
    try:
        return _schema(schema).load(data)
    except ValidationError as exc:
        raise BadRequest("Invalid request", exc.messages) from None


def agent_id_header(req: falcon.Request) -> str | None:
    """The caller's agent id (``X-Agent-Id``), checked like any other input."""
    value = req.get_header(AGENT_ID_HEADER)
    if value is None:
        return None
    check_text(value, AGENT_ID_HEADER)
    if not value.strip() or len(value) > MAX_AGENT_ID or not (value.isascii() and value.isprintable()):
        raise BadRequest(
            "Invalid request",
            {AGENT_ID_HEADER: f"must be an agent id (1-{MAX_AGENT_ID} characters) from POST /api/agents"},
        )
    return value


def make_resource(endpoints: list[Endpoint], service: APIService, auth: Authenticator, max_body: int) -> object:
    """A Falcon resource for one path with a responder per declared method (others get 405)."""

    def responder_for(endpoint: Endpoint) -> Callable[..., None]:
        def responder(_self: object, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
            principal = Principal(tenant_id=auth.default_tenant, role="admin")
            if endpoint.roles is not None:
                principal = auth.principal(req)
                req.context.tenant = principal.tenant_id
                if principal.role not in endpoint.roles:
                    allowed = ", ".join(sorted(endpoint.roles))
                    raise AuthError(
                        "Forbidden",
                        f"role {principal.role!r} may not {endpoint.method} {endpoint.path}; it needs {allowed}",
                        403,
                    )
            body: dict[str, Any] = {}
            if endpoint.body is not None:
                body = load(endpoint.body, read_json(req, max_body), "body")
            for name, value in params.items():
                check_text(value, name)
            query: dict[str, Any] = {}
            check_text(dict(req.params), "query")
            if endpoint.query is not None:
                query = load(endpoint.query, dict(req.params), "query")
            elif req.params:
                raise BadRequest("Invalid request", {"query": f"unexpected parameters: {', '.join(req.params)}"})
            call = Call(service, principal, body, query, params, agent_id_header(req))
            result = endpoint.handler(call)
            status = endpoint.status
            if isinstance(result, tuple):
                status, result = result
            resp.status = status
            resp.media = result

        return responder

    attrs = {f"on_{e.method.lower()}": responder_for(e) for e in endpoints}
    return type("Resource", (), attrs)()
