"""The dashboard over plain HTTP: what a browser is told (headers, cookie) and the pages without auth."""

from __future__ import annotations

import requests

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
