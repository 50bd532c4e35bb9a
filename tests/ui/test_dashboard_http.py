"""The dashboard over plain HTTP: what a browser is told (headers, cookie) and the pages without auth."""

from __future__ import annotations

import re
import time

import pendulum
import requests

from agent_core.server.settings import ServerSettings
from agent_core.server.ui import views
from agent_core.testing.servers import APIServer


def test_without_auth_the_dashboard_needs_no_key(tmp_path):
    with APIServer(f"sqlite:///{tmp_path / 'open.db'}") as server:
        api = server.client()
        run = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])

        page = requests.get(f"{server.url}/", timeout=10)
        logs = requests.get(f"{server.url}/ui/runs/{run['id']}/logs", timeout=10)

    assert page.status_code == 200
    assert run["id"] in page.text
    assert "auth off" in page.text
    assert logs.json() == {"items": [], "next_cursor": logs.json()["next_cursor"], "final": False}


def test_pages_forbid_scripts_from_elsewhere_and_are_not_cached(dashboard):
    page = requests.get(f"{dashboard.server.url}/ui/login", timeout=10)

    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Content-Type"].startswith("text/html")


def test_the_session_cookie_is_http_only_and_same_site_strict(dashboard):
    response = requests.post(
        f"{dashboard.server.url}/ui/login",
        data={"key": dashboard.keys["user"], "next": "/ui/agents"},
        allow_redirects=False,
        timeout=10,
    )

    cookie = response.headers["Set-Cookie"]
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/agents"
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Expires" not in cookie and "Max-Age" not in cookie  # ends with the browser session


def test_the_login_never_redirects_off_the_server(dashboard):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = requests.post(
            f"{dashboard.server.url}/ui/login",
            data={"key": dashboard.keys["user"], "next": target},
            allow_redirects=False,
            timeout=10,
        )
        assert response.headers["Location"] == "/"


def test_a_form_without_the_sessions_token_is_refused(dashboard):
    api = dashboard.client()
    run = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])
    session = requests.Session()
    session.post(f"{dashboard.server.url}/ui/login", data={"key": dashboard.keys["admin"]}, timeout=10)

    response = session.post(f"{dashboard.server.url}/ui/runs/{run['id']}/cancel", data={"csrf": "forged"}, timeout=10)

    assert response.status_code == 403
    assert "Stale form" in response.text
    assert api.get_flow_run(run["id"])["state"]["type"] == "Scheduled"


def test_the_fragments_answer_401_not_a_redirect_without_a_session(dashboard):
    response = requests.get(f"{dashboard.server.url}/ui/fragments/runs", allow_redirects=False, timeout=10)

    assert response.status_code == 401


def agents_page(server: APIServer) -> str:
    page = requests.get(f"{server.url}/ui/agents", timeout=10)
    assert page.status_code == 200
    return page.text


def agent_row(page: str, name: str) -> str:
    (row,) = [r for r in page.split("<tr>") if f"<td>{name}</td>" in r]
    return row


def test_an_agent_whose_lease_holds_shows_alive_until_its_lease_end(tmp_path):
    with APIServer(f"sqlite:///{tmp_path / 'open.db'}") as server:
        runner = server.client()
        agent = runner.register_agent(name="worker-1", backend="local", labels=[])
        lease_until = next(a for a in runner.list_agents() if a["id"] == agent["id"])["lease_until"]

        row = agent_row(agents_page(server), "worker-1")

    assert '<span class="state success">alive</span>' in row
    assert f'until <time datetime="{lease_until}">' in row


def test_an_agent_past_its_lease_shows_the_lease_expired(tmp_path):
    settings = ServerSettings(agent_lease_seconds=0.5)
    with APIServer(f"sqlite:///{tmp_path / 'open.db'}", settings=settings) as server:
        server.client().register_agent(name="worker-1", backend="local", labels=[])
        time.sleep(1.5)  # the lease (0.5 s) is over

        row = agent_row(agents_page(server), "worker-1")

    assert re.search(r'<span class="state failed">lease expired \d+ s ago</span>', row)


def test_an_agent_that_left_shows_when_it_left(tmp_path):
    with APIServer(f"sqlite:///{tmp_path / 'open.db'}") as server:
        runner = server.client()
        agent = runner.register_agent(name="worker-1", backend="local", labels=[])
        runner.leave_agent(agent["id"])

        row = agent_row(agents_page(server), "worker-1")

    assert '<span class="state cancelled">left</span>' in row
    assert "left <time" in row


def test_the_agents_page_names_the_servers_lease(tmp_path):
    settings = ServerSettings(agent_lease_seconds=45)
    with APIServer(f"sqlite:///{tmp_path / 'open.db'}", settings=settings) as server:
        page = agents_page(server)

    assert "(45 s, or three heartbeat periods if longer)" in page


def test_an_agent_without_a_recorded_lease_is_judged_by_the_servers_lease() -> None:
    seen = pendulum.datetime(2026, 1, 31, 9, 0, 0)
    agent = {"last_heartbeat": seen.isoformat(), "lease_until": None, "left": None}

    assert views.agent_health(agent, seen.add(seconds=59), lease_seconds=60) == ("alive", "success")
    assert views.agent_health(agent, seen.add(seconds=75), lease_seconds=60) == ("lease expired 15 s ago", "failed")
