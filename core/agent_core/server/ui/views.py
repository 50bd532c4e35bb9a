"""The dashboard's pages as HTML strings. Every value from the store is escaped with ``h``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pendulum

from agent_core.server.ui.html import first_line, h, page, query, state_badge, when
from agent_core.states import State

if TYPE_CHECKING:
    from agent_core.server.ui.session import Viewer

PAGE_SIZE = 50
REFRESH_SECONDS = 3
# The lease the server gives an agent with each heartbeat (`[server] agent_lease_seconds`, 90 s by
# default, or 3 heartbeat periods if longer): past it, the server recovers the agent's runs.
DEFAULT_LEASE_SECONDS = 90.0


def layout(current: Viewer, tenant: str, title: str, body: str, active: str, *, auth_required: bool) -> str:
    who = current.describe(tenant) if (current.session or auth_required) else "auth off · admin"
    return page(title, body, active=active, who=who, csrf=current.csrf, logged_in=bool(current.session))


def error_page(title: str, detail: str) -> str:
    body = f'<h1>{h(title)}</h1><p class="error">{h(detail)}</p><p><a href="/">Back to the runs</a></p>'
    return page(title, body)


def not_found(what: str) -> str:
    return f'<h1>Not found</h1><p class="error">No run {h(what)} in this tenant.</p><p><a href="/">All runs</a></p>'


# --- runs ---------------------------------------------------------------------------------


def runs_page(runs: list[dict[str, Any]], cursor: str | None, filters: dict[str, Any], flow_names: list[str]) -> str:
    selected = set(filters["states"])
    state_options = "".join(
        f'<option value="{h(s.value)}"{" selected" if s.value in selected else ""}>{h(s.value)}</option>' for s in State
    )
    flow_options = '<option value="">any flow</option>' + "".join(
        f'<option value="{h(name)}"{" selected" if name == filters["flow"] else ""}>{h(name)}</option>'
        for name in flow_names
    )
    fragment = "/ui/fragments/runs" + query(
        state=filters["states"], flow=filters["flow"], label=filters["label"], cursor=filters["cursor"]
    )
    return f"""<h1>Runs</h1>
<form method="get" action="/" class="filters" id="filters">
<label>State <select name="state" multiple size="4">{state_options}</select></label>
<label>Flow <select name="flow">{flow_options}</select></label>
<label>Label <input name="label" value="{h(filters["label"])}" placeholder="any label"></label>
<button type="submit">Filter</button>
<a href="/">Clear</a>
<label class="refresh"><input type="checkbox" id="auto-refresh" checked> auto-refresh</label>
</form>
<table class="runs">
<thead><tr><th>Run</th><th>Flow</th><th>State</th><th>Attempt</th><th>Scheduled</th><th>Updated</th>
<th>Message</th></tr></thead>
<tbody id="runs" data-refresh="{h(fragment)}" data-every="{REFRESH_SECONDS}">
{run_rows(runs, cursor, filters)}
</tbody>
</table>"""


def run_rows(runs: list[dict[str, Any]], cursor: str | None, filters: dict[str, Any]) -> str:
    if not runs:
        return '<tr class="empty"><td colspan="7">No flow runs match.</td></tr>'
    rows = [
        f'<tr data-run-id="{h(r["id"])}">'
        f'<td><a href="/ui/runs/{h(r["id"])}" title="{h(r["id"])}"><code>{h(r["id"][:8])}</code></a> '
        f"{h(r['name'])}</td>"
        f"<td>{h(r['flow']['name'])}</td>"
        f"<td>{state_badge(r['state']['type'])}</td>"
        f"<td>{h(r['attempt'])}</td>"
        f"<td>{when(r['scheduled_start_time'])}</td>"
        f"<td>{when(r['state']['timestamp'])}</td>"
        f"<td>{h(first_line(r['state']['message']))}</td>"
        "</tr>"
        for r in runs
    ]
    if cursor:
        older = "/" + query(state=filters["states"], flow=filters["flow"], label=filters["label"], cursor=cursor)
        rows.append(f'<tr class="more"><td colspan="7"><a href="{h(older)}">Older runs</a></td></tr>')
    return "\n".join(rows)


def run_page(run: dict[str, Any], history: list[dict[str, Any]], current: Viewer) -> str:
    run_id = run["id"]
    return f"""<h1>Run {h(run["name"])}</h1>
<section id="run" data-refresh="/ui/fragments/runs/{h(run_id)}" data-every="{REFRESH_SECONDS}">
{run_details(run, history, current)}
</section>
<h2>Logs</h2>
<pre id="logs" class="logs" data-logs="/ui/runs/{h(run_id)}/logs" aria-live="polite"></pre>
<p id="logs-status" class="muted">Loading logs…</p>"""


def run_details(run: dict[str, Any], history: list[dict[str, Any]], current: Viewer) -> str:
    deployment = run["deployment"] or {}
    rows = [
        ("id", f"<code>{h(run['id'])}</code>"),
        ("flow", f"{h(run['flow']['name'])} v{h(run['flow']['version'])}"),
        ("command", f"<code>{h(run['flow']['command'])}</code>"),
        ("state", f"{state_badge(run['state']['type'])} {h(run['state']['message'] or '')}"),
        ("attempt", f"{h(run['attempt'])} of {h(run['max_retries'] + 1)}"),
        ("scheduled", when(run["scheduled_start_time"])),
        ("started", when(run["start_time"])),
        ("ended", when(run["end_time"])),
        ("parameters", f"<code>{h(json.dumps(run['parameters']))}</code>"),
        ("labels", h(", ".join(run["labels"]) or "-")),
        ("run config", f"<code>{h(json.dumps(run['run_config']))}</code>" if run["run_config"] else "-"),
        ("agent", f"<code>{h(run['agent_id'])}</code>" if run["agent_id"] else "-"),
        ("deployment", _deployment(deployment)),
    ]
    table = "".join(f"<tr><th>{h(k)}</th><td>{v}</td></tr>" for k, v in rows)
    entries = "".join(
        f"<tr><td>{when(e['timestamp'])}</td><td>{state_badge(e['type'])}</td>"
        f"<td>{h(e['attempt'])}</td><td>{h(e['message'] or '')}</td></tr>"
        for e in history
    )
    action = ""
    if not State(run["state"]["type"]).is_final and run["state"]["type"] != State.CANCELLING:
        if current.may_act:
            action = (
                f'<form method="post" action="/ui/runs/{h(run["id"])}/cancel" class="actions">'
                f'<input type="hidden" name="csrf" value="{h(current.csrf)}">'
                '<button type="submit" class="danger">Cancel run</button></form>'
            )
        else:
            action = '<p class="muted">Read-only: cancelling needs an admin key.</p>'
    return f"""<table class="details">{table}</table>
{action}
<h2>State history</h2>
<table class="history"><thead><tr><th>When</th><th>State</th><th>Attempt</th><th>Message</th></tr></thead>
<tbody>{entries}</tbody></table>"""


def _deployment(deployment: dict[str, Any]) -> str:
    if not deployment:
        return "-"
    parts = [h(deployment.get("info") or "")]
    for key in ("backend", "platform_id"):
        if deployment.get(key):
            parts.append(f'<span class="muted">{h(key)}</span> <code>{h(deployment[key])}</code>')
    return "<br>".join(p for p in parts if p)


# --- agents and flows ---------------------------------------------------------------------


def agent_lease_until(agent: dict[str, Any], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> str | None:
    """When the agent's lease ends: as the server recorded it, else its last heartbeat plus the
    server's ``agent_lease_seconds`` (an agent registered before leases were recorded)."""
    if agent.get("lease_until"):
        return str(agent["lease_until"])
    seen = agent.get("last_heartbeat")
    if not seen:
        return None
    moment = pendulum.parse(seen)
    assert isinstance(moment, pendulum.DateTime)
    return moment.add(seconds=lease_seconds).isoformat()


def agent_health(
    agent: dict[str, Any], now: pendulum.DateTime | None = None, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> tuple[str, str]:
    """(label, css class): alive while its lease holds, lease expired once the server may have
    recovered its runs, left after a clean exit."""
    if agent.get("left") or agent.get("left_at"):
        return "left", "cancelled"
    until = agent_lease_until(agent, lease_seconds)
    if until is None:
        return "never seen", "failed"
    end = pendulum.parse(until)
    assert isinstance(end, pendulum.DateTime)
    overdue = ((now or pendulum.now("UTC")) - end).total_seconds()
    if overdue <= 0:
        return "alive", "success"
    return f"lease expired {int(overdue)} s ago", "failed"


def agent_lease(agent: dict[str, Any], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> str:
    """The lease cell: when the agent left, or until when its lease holds (or held)."""
    left = agent.get("left") or agent.get("left_at")
    if left:
        return f"left {when(str(left))}"
    until = agent_lease_until(agent, lease_seconds)
    return f"until {when(until)}" if until else "-"


def agents_page(agents: list[dict[str, Any]], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> str:
    return f"""<h1>Agents</h1>
<p class="muted">An agent's lease is renewed by each heartbeat; once it expires the server hands the
agent's runs back or fails them ({int(lease_seconds)} s, or three heartbeat periods if longer).</p>
<table class="agents"><thead><tr><th>Name</th><th>Backend</th><th>Labels</th><th>Last heartbeat</th>
<th>Health</th><th>Lease</th><th>Id</th></tr></thead>
<tbody id="agents" data-refresh="/ui/fragments/agents" data-every="{REFRESH_SECONDS * 2}">
{agent_rows(agents, lease_seconds)}
</tbody></table>"""


def agent_rows(agents: list[dict[str, Any]], lease_seconds: float = DEFAULT_LEASE_SECONDS) -> str:
    if not agents:
        return '<tr class="empty"><td colspan="7">No agents have registered yet.</td></tr>'
    out = []
    for a in agents:
        label, css = agent_health(a, lease_seconds=lease_seconds)
        out.append(
            f"<tr><td>{h(a['name'])}</td><td>{h(a['backend'])}</td><td>{h(', '.join(a['labels']) or '-')}</td>"
            f'<td class="heartbeat">{when(a["last_heartbeat"])}</td>'
            f'<td><span class="state {css}">{h(label)}</span></td>'
            f'<td class="lease">{agent_lease(a, lease_seconds)}</td>'
            f"<td><code>{h(a['id'][:8])}</code></td></tr>"
        )
    return "\n".join(out)


def flows_page(flows: list[dict[str, Any]], cursor: str | None) -> str:
    rows = "".join(
        f'<tr><td><a href="/{query(flow=f["name"])}">{h(f["name"])}</a></td><td>{h(f["version"])}</td>'
        f"<td><code>{h(f['command'])}</code></td><td>{h(', '.join(f['labels']) or '-')}</td>"
        f"<td>{when(f['updated'])}</td></tr>"
        for f in flows
    )
    if not flows:
        rows = '<tr class="empty"><td colspan="5">No flows yet: agent flows register NAME --command CMD</td></tr>'
    more = f'<p><a href="/ui/flows{query(cursor=cursor)}">More flows</a></p>' if cursor else ""
    return f"""<h1>Flows</h1>
<table class="flows"><thead><tr><th>Name</th><th>Version</th><th>Command</th><th>Labels</th><th>Updated</th>
</tr></thead>
<tbody>{rows}</tbody></table>{more}"""


# --- login --------------------------------------------------------------------------------


def login_page(next_: str, problem: str, *, auth_required: bool) -> str:
    note = (
        ""
        if auth_required
        else '<p class="muted">This server runs without auth: you may <a href="/">look around</a> without a key.</p>'
    )
    error = f'<p class="error" role="alert">{h(problem)}</p>' if problem else ""
    body = f"""<h1>Log in</h1>
{error}{note}
<form method="post" action="/ui/login" class="login">
<input type="hidden" name="next" value="{h(next_)}">
<label>API key <input type="password" name="key" autocomplete="current-password" required autofocus></label>
<button type="submit">Log in</button>
</form>
<p class="muted">Any key works: admin keys may act (cancel runs), user and runner keys may only look.
The key is kept in a session cookie until you log out or close the browser.</p>"""
    return page("Log in", body)
