"""A real headless Chromium (Debian's ``chromium``) driven by Playwright, and a server with keys.

Playwright's own browser download is not used: the browser is the system's
``/usr/bin/chromium`` (``.ci/run`` installs it), started with the flags that keep it off the
network. Without it the tests are skipped, and with ``CI=true`` they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agent_core.client import APIClient
from agent_core.testing.servers import APIServer
from tests.fixtures.services import require_service

CHROMIUM_FLAGS = [
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Without these Chromium keeps connecting to Google's hosts, which a closed network refuses.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("AGENT_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    if executable is None:
        require_service("chromium", "no chromium found: apt-get install chromium (.ci/run does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", "the playwright package is missing: make dev installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@dataclass
class Page:
    """A browser tab that records console errors and uncaught exceptions."""

    page: Any
    base: str
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        self.page.wait_for_load_state("load")
        return response

    def login(self, key: str) -> None:
        self.open("/ui/login")
        self.page.fill("input[name=key]", key)
        self.page.click("form.login button[type=submit]")
        self.page.wait_for_load_state("load")


@pytest.fixture
def tab(browser: Any, dashboard: Dashboard) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(20_000)
    tab = Page(page, dashboard.server.url)

    def on_console(message: Any) -> None:
        if message.type == "error":
            tab.errors.append(f"console error: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
    yield tab
    context.close()


@dataclass
class Dashboard:
    server: APIServer
    keys: dict[str, str]

    def client(self, role: str = "admin") -> APIClient:
        return self.server.client(self.keys[role])


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[Dashboard]:
    """An API server with auth on (so the login and the roles are real) and a key per role."""
    with APIServer(f"sqlite:///{tmp_path / 'ui.db'}", auth=True) as server:
        tenant = server.store.ensure_tenant()
        keys = {role: server.store.create_key(tenant, role, f"ui-{role}")[1] for role in ("admin", "user", "runner")}
        yield Dashboard(server, keys)
