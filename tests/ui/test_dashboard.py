"""The dashboard in a real headless Chromium: pages load clean, runs appear, logs follow, roles hold."""

from __future__ import annotations

import re

import pytest
import requests

pytestmark = pytest.mark.timeout(180)


def run_of(dashboard, flow_name="etl", **kwargs):
    api = dashboard.client()
    flow = api.register_flow(flow_name, f"echo {flow_name}", labels=kwargs.pop("flow_labels", []))
    return api.create_flow_run(flow_id=flow["id"], **kwargs)


def test_every_page_loads_with_no_console_error(dashboard, tab):
    run = run_of(dashboard)
    dashboard.client("runner").register_agent(name="worker-1", backend="local", labels=[])
    tab.login(dashboard.keys["admin"])

    for path in ("/", f"/ui/runs/{run['id']}", "/ui/agents", "/ui/flows", "/?state=Scheduled&flow=etl"):
        response = tab.open(path)
        assert response.status == 200, path
    tab.page.wait_for_timeout(4000)  # a refresh round of every page's script

    assert tab.errors == []


def test_without_a_session_the_dashboard_asks_for_a_key(dashboard, tab):
    tab.open("/")

    assert "/ui/login" in tab.page.url
    assert tab.page.locator("input[name=key]").is_visible()


def test_a_wrong_key_is_refused_at_the_login_form(dashboard, tab):
    tab.login("agk_" + "x" * 43)

    assert "/ui/login" in tab.page.url
    assert "unknown or revoked" in tab.page.inner_text("main")


def test_a_run_created_through_the_api_appears_on_the_runs_page(dashboard, tab):
    run_of(dashboard, "first")
    tab.login(dashboard.keys["user"])
    tab.open("/")

    created = run_of(dashboard, "second")

    row = tab.page.locator(f'tr[data-run-id="{created["id"]}"]')
    row.wait_for(timeout=20_000)  # no reload: the runs table refreshes itself
    assert "second" in row.inner_text()
    assert "Scheduled" in row.inner_text()
    assert tab.errors == []


def test_a_runs_page_follows_its_logs_until_it_ends(dashboard, tab):
    run = run_of(dashboard)
    runner = dashboard.client("runner")
    tab.login(dashboard.keys["user"])
    tab.open(f"/ui/runs/{run['id']}")
    tab.page.wait_for_selector("#logs-status:has-text('Waiting for logs')")

    runner.write_logs([{"flow_run_id": run["id"], "message": "step one"}])
    tab.page.wait_for_selector("#logs:has-text('step one')")
    running = runner.set_flow_run_state(run["id"], version=1, state="Running")
    runner.write_logs([{"flow_run_id": run["id"], "message": "step two", "level": "WARNING"}])
    runner.set_flow_run_state(run["id"], version=running["version"], state="Success", message="done")

    tab.page.wait_for_selector("#logs:has-text('step two')")
    tab.page.wait_for_selector("#logs-status:has-text('the run has ended')")
    tab.page.wait_for_selector("#run .state.success")  # the state history refreshed too
    text = tab.page.inner_text("#logs")
    assert text.index("step one") < text.index("step two")
    assert tab.errors == []


def test_workload_output_is_shown_as_text_never_as_html(dashboard, tab):
    run = run_of(dashboard)
    hostile = ["copying [/mnt/data] [bold]x[/bold]", "<img src=x onerror=\"document.title='owned'\">", "</pre><b>b</b>"]
    dashboard.client("runner").write_logs([{"flow_run_id": run["id"], "message": m} for m in hostile])
    tab.login(dashboard.keys["admin"])

    tab.open(f"/ui/runs/{run['id']}")
    tab.page.wait_for_selector("#logs:has-text('/mnt/data')")

    text = tab.page.inner_text("#logs")
    for message in hostile:
        assert message in text
    assert tab.page.locator("#logs img, #logs b").count() == 0
    assert tab.page.title() != "owned"


def test_flow_names_and_state_messages_are_escaped(dashboard, tab):
    api = dashboard.client()
    flow = api.register_flow("<script>document.title='owned'</script>", "echo")
    run = api.create_flow_run(flow_id=flow["id"])
    runner = dashboard.client("runner")
    runner.set_flow_run_state(run["id"], version=1, state="Failed", message="<b>boom</b> [red]x[/red]")
    tab.login(dashboard.keys["admin"])

    for path in ("/", "/ui/flows", f"/ui/runs/{run['id']}"):
        tab.open(path)
        assert tab.page.title() != "owned"
        assert tab.page.locator("main b, main script").count() == 0
    assert "<b>boom</b> [red]x[/red]" in tab.page.inner_text("#run")


def test_the_runs_page_filters_by_state_flow_and_label(dashboard, tab):
    api = dashboard.client()
    etl = api.register_flow("etl", "echo etl")
    report = api.register_flow("report", "echo report")
    scheduled = api.create_flow_run(flow_id=etl["id"])
    labelled = api.create_flow_run(flow_id=etl["id"], labels=["gpu"])
    other = api.create_flow_run(flow_id=report["id"])
    cancelled = api.cancel_flow_run(api.create_flow_run(flow_id=report["id"])["id"])
    tab.login(dashboard.keys["user"])

    def shown(path):
        tab.open(path)
        return set(tab.page.locator("tr[data-run-id]").evaluate_all("rows => rows.map(r => r.dataset.runId)"))

    assert shown("/?flow=etl") == {scheduled["id"], labelled["id"]}
    assert shown("/?label=gpu") == {labelled["id"]}
    assert shown("/?state=Cancelled") == {cancelled["id"]}
    assert shown("/?flow=report&state=Scheduled") == {other["id"]}


def test_the_filter_form_applies_the_chosen_flow(dashboard, tab):
    api = dashboard.client()
    wanted = api.create_flow_run(flow_id=api.register_flow("etl", "echo")["id"])
    api.create_flow_run(flow_id=api.register_flow("report", "echo")["id"])
    tab.login(dashboard.keys["user"])
    tab.open("/")

    tab.page.select_option("select[name=flow]", "etl")
    tab.page.click("#filters button[type=submit]")
    tab.page.wait_for_load_state("load")

    ids = tab.page.locator("tr[data-run-id]").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert ids == [wanted["id"]]


def test_the_agents_page_shows_last_heartbeat_and_health(dashboard, tab):
    runner = dashboard.client("runner")
    agent = runner.register_agent(name="worker-1", backend="docker", labels=["gpu"])
    runner.agent_heartbeat(agent["id"])
    tab.login(dashboard.keys["user"])

    tab.open("/ui/agents")

    row = tab.page.locator("tr", has_text="worker-1")
    assert "docker" in row.inner_text()
    assert "gpu" in row.inner_text()
    assert "alive" in row.inner_text()
    assert row.locator("td.heartbeat time").count() == 1
    assert "until" in row.locator("td.lease").inner_text()  # the lease each heartbeat renews


def test_the_flows_page_lists_flows_with_a_link_to_their_runs(dashboard, tab):
    api = dashboard.client()
    api.register_flow("etl", "python etl.py", labels=["eu"])
    tab.login(dashboard.keys["user"])

    tab.open("/ui/flows")
    tab.page.click("a:has-text('etl')")
    tab.page.wait_for_load_state("load")

    assert re.search(r"/\?flow=etl$", tab.page.url)


def test_an_admin_cancels_a_run_from_its_page(dashboard, tab):
    run = run_of(dashboard)
    tab.login(dashboard.keys["admin"])
    tab.open(f"/ui/runs/{run['id']}")

    tab.page.click("button:has-text('Cancel run')")
    tab.page.wait_for_load_state("load")

    assert dashboard.client().get_flow_run(run["id"])["state"]["type"] == "Cancelled"
    assert "Cancelled from the dashboard" in tab.page.inner_text("#run")
    assert tab.errors == []


def test_a_user_key_gives_a_read_only_dashboard(dashboard, tab):
    run = run_of(dashboard)
    tab.login(dashboard.keys["user"])
    tab.open(f"/ui/runs/{run['id']}")

    assert tab.page.locator("button:has-text('Cancel run')").count() == 0
    assert "read-only" in tab.page.inner_text("header")
    # Sending the form anyway, with this session's own token, is refused.
    cookies = {c["name"]: c["value"] for c in tab.page.context.cookies()}
    csrf = tab.page.locator("header input[name=csrf]").get_attribute("value")
    response = requests.post(
        f"{dashboard.server.url}/ui/runs/{run['id']}/cancel",
        data={"csrf": csrf},
        cookies=cookies,
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 403
    assert "cancelling needs an admin key" in response.text
    assert dashboard.client().get_flow_run(run["id"])["state"]["type"] == "Scheduled"


def test_revoking_the_key_ends_its_dashboard_session(dashboard, tab):
    admin = dashboard.client()
    created = admin.create_key("user", "soon revoked")
    tab.login(created["key"])
    tab.open("/")
    assert "/ui/login" not in tab.page.url

    admin.revoke_key(created["id"])
    tab.open("/")

    assert "/ui/login" in tab.page.url
    assert "unknown or revoked" in tab.page.inner_text("main")


def test_logging_out_ends_the_session(dashboard, tab):
    tab.login(dashboard.keys["admin"])
    tab.open("/")

    tab.page.click("button:has-text('Log out')")
    tab.page.wait_for_load_state("load")
    tab.open("/")

    assert "/ui/login" in tab.page.url
