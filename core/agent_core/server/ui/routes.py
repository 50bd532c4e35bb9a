"""The dashboard's routes: pages, the fragments their script refreshes, log lines, login and actions."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote

import falcon

from agent_core.errors import APIError, NotFound
from agent_core.server.routing import Authenticator
from agent_core.server.storage import Store
from agent_core.server.ui import views
from agent_core.server.ui.session import (
    LoginRequired,
    Viewer,
    check_csrf,
    clear_session,
    set_session,
    viewer,
)
from agent_core.states import State

MAX_FORM = 16 * 1024
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
# Scripts and styles only from this server; nothing inline, nothing framed.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)


def _html(resp: falcon.Response, body: str, status: str = falcon.HTTP_200) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_HTML
    resp.text = body
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "same-origin")
    resp.cache_control = ["no-store"]


def _redirect(resp: falcon.Response, target: str) -> None:
    resp.status = falcon.HTTP_303
    resp.location = target


def _refuse(resp: falcon.Response, title: str, detail: str, status: str = falcon.HTTP_403) -> None:
    _html(resp, views.error_page(title, detail), status)


def _form(req: falcon.Request) -> dict[str, str]:
    raw = req.bounded_stream.read(MAX_FORM + 1)
    if len(raw) > MAX_FORM:
        raise falcon.HTTPPayloadTooLarge(description=f"a form is at most {MAX_FORM} bytes")
    parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


def _safe_next(target: str | None) -> str:
    # Only paths on this server: never "//elsewhere" or "https://elsewhere".
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class _Base:
    def __init__(self, store: Store, auth: Authenticator) -> None:
        self.store = store
        self.auth = auth

    def who(self, req: falcon.Request, resp: falcon.Response) -> Viewer | None:
        """The viewer, or ``None`` after answering with a redirect to the login form."""
        try:
            return viewer(req, self.auth)
        except LoginRequired as exc:
            if req.path.startswith("/ui/fragments/") or req.path.endswith("/logs"):
                resp.status = falcon.HTTP_401
                resp.media = {"error": "Login required", "detail": exc.reason or "log in at /ui/login"}
                return None
            target = "/ui/login?next=" + quote(req.relative_uri, safe="")
            if exc.reason:
                target += "&reason=revoked"
                clear_session(resp)
            _redirect(resp, target)
            return None

    def layout(self, current: Viewer, title: str, body: str, active: str = "") -> str:
        tenant = self.store.tenant_name(current.principal.tenant_id)
        return views.layout(current, tenant, title, body, active, auth_required=self.auth.required)


def _run_filters(req: falcon.Request) -> dict[str, Any]:
    states = [s for s in req.get_param_as_list("state") or [] if s]
    try:
        parsed = [State.parse(s).value for s in states]
    except ValueError as exc:
        raise APIError("Invalid filter", str(exc), 400) from None
    return {
        "states": parsed,
        "flow": (req.get_param("flow") or "").strip(),
        "label": (req.get_param("label") or "").strip(),
        "cursor": req.get_param("cursor") or None,
    }


class RunsPage(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        filters = _run_filters(req)
        runs, cursor = self._runs(current, filters)
        flows, _ = self.store.list_flows(current.principal.tenant_id, 200, None)
        body = views.runs_page(runs, cursor, filters, [f["name"] for f in flows])
        _html(resp, self.layout(current, "Runs", body, "runs"))

    def _runs(self, current: Viewer, filters: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
        return self.store.list_runs(
            current.principal.tenant_id,
            limit=views.PAGE_SIZE,
            cursor=filters["cursor"],
            states=filters["states"] or None,
            flow=filters["flow"] or None,
            label=filters["label"] or None,
        )


class RunsFragment(RunsPage):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        filters = _run_filters(req)
        runs, cursor = self._runs(current, filters)
        _html(resp, views.run_rows(runs, cursor, filters))


class RunPage(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        try:
            run, history = self._run(current, run_id)
        except NotFound:
            _html(resp, self.layout(current, "Not found", views.not_found(run_id)), falcon.HTTP_404)
            return
        _html(resp, self.layout(current, f"Run {run['name']}", views.run_page(run, history, current), "runs"))

    def _run(self, current: Viewer, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        tenant = current.principal.tenant_id
        return self.store.get_run(tenant, run_id), self.store.state_history(tenant, run_id)


class RunFragment(RunPage):
    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        run, history = self._run(current, run_id)
        _html(resp, views.run_details(run, history, current))


class RunLogs(_Base):
    """JSON for the log follower: lines after a cursor and whether the run has ended.

    The script puts each message in with ``textContent``: workload output is never HTML.
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        tenant = current.principal.tenant_id
        # The state is read before the lines: a run final by then has written all its lines.
        final = State(self.store.get_run(tenant, run_id)["state"]["type"]).is_final
        items, cursor = self.store.read_logs(tenant, run_id, req.get_param("cursor") or None, 500)
        resp.media = {"items": items, "next_cursor": cursor, "final": final}
        resp.cache_control = ["no-store"]


class CancelRun(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response, run_id: str) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        if not check_csrf(_form(req), current):
            _refuse(resp, "Stale form", "This form did not come from this session: reload the page and try again.")
            return
        if not current.may_act:
            role = current.principal.role
            _refuse(resp, "Read-only", f"A {role} key may look but not act here: cancelling needs an admin key.")
            return
        target = f"/ui/runs/{quote(run_id)}"
        try:
            self.store.cancel_run(current.principal.tenant_id, run_id, "Cancelled from the dashboard")
        except APIError as exc:
            target += f"?error={quote(str(exc))}"
        _redirect(resp, target)


class _AgentsBase(_Base):
    def __init__(self, store: Store, auth: Authenticator, lease_seconds: float) -> None:
        super().__init__(store, auth)
        self.lease_seconds = lease_seconds  # the server's agent_lease_seconds, for the lease column


class AgentsPage(_AgentsBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        agents = self.store.list_agents(current.principal.tenant_id)
        page = views.agents_page(agents, self.lease_seconds)
        _html(resp, self.layout(current, "Agents", page, "agents"))


class AgentsFragment(_AgentsBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        _html(resp, views.agent_rows(self.store.list_agents(current.principal.tenant_id), self.lease_seconds))


class FlowsPage(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        current = self.who(req, resp)
        if current is None:
            return
        flows, cursor = self.store.list_flows(current.principal.tenant_id, 200, req.get_param("cursor") or None)
        _html(resp, self.layout(current, "Flows", views.flows_page(flows, cursor), "flows"))


class Login(_Base):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reason = "The key of your session is unknown or revoked." if req.get_param("reason") == "revoked" else ""
        next_ = _safe_next(req.get_param("next"))
        _html(resp, views.login_page(next_, reason, auth_required=self.auth.required))

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        form = _form(req)
        key = form.get("key", "").strip()
        next_ = _safe_next(form.get("next"))
        principal = self.store.authenticate(key) if key else None
        if principal is None:
            _html(
                resp,
                views.login_page(next_, "That key is unknown or revoked.", auth_required=self.auth.required),
                falcon.HTTP_401,
            )
            return
        set_session(resp, req, key)
        _redirect(resp, next_)


class Logout(_Base):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            current = viewer(req, self.auth)
        except LoginRequired:
            current = None
        if current is not None and not check_csrf(_form(req), current):
            _refuse(resp, "Stale form", "This form did not come from this session: reload the page and try again.")
            return
        clear_session(resp)
        _redirect(resp, "/ui/login")


class Static:
    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        suffix = name[name.rfind(".") :] if "." in name else ""
        if "/" in name or suffix not in STATIC_TYPES:
            raise falcon.HTTPNotFound()
        try:
            data = resources.files("agent_core.server.ui").joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise falcon.HTTPNotFound() from None
        resp.content_type = STATIC_TYPES[suffix]
        resp.data = data
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Content-Type-Options", "nosniff")


def register_ui(
    app: falcon.App, store: Store, auth: Authenticator, *, lease_seconds: float = views.DEFAULT_LEASE_SECONDS
) -> None:
    """Add the dashboard's routes to the API app (``/`` and ``/ui/...``; the API keeps ``/api/``).

    ``lease_seconds``: the server's ``[server] agent_lease_seconds``, shown on the agents page.
    """
    routes: list[tuple[str, Callable[[], object]]] = [
        ("/", lambda: RunsPage(store, auth)),
        ("/ui", lambda: RunsPage(store, auth)),
        ("/ui/runs/{run_id}", lambda: RunPage(store, auth)),
        ("/ui/runs/{run_id}/logs", lambda: RunLogs(store, auth)),
        ("/ui/runs/{run_id}/cancel", lambda: CancelRun(store, auth)),
        ("/ui/agents", lambda: AgentsPage(store, auth, lease_seconds)),
        ("/ui/flows", lambda: FlowsPage(store, auth)),
        ("/ui/fragments/runs", lambda: RunsFragment(store, auth)),
        ("/ui/fragments/runs/{run_id}", lambda: RunFragment(store, auth)),
        ("/ui/fragments/agents", lambda: AgentsFragment(store, auth, lease_seconds)),
        ("/ui/login", lambda: Login(store, auth)),
        ("/ui/logout", lambda: Logout(store, auth)),
        ("/ui/static/{name}", Static),
    ]
    for path, make in routes:
        app.add_route(path, make())
