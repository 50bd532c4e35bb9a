"""pytest plugin of agent-core: fixtures for a real API server, and the conformance kit's reporting.

Loaded automatically where agent-core is installed (``pytest11`` entry point). At the end of a
run it lists the conformance capabilities that were not tested, with the backend's reasons, so
a green run never hides a skipped capability.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core.testing.servers import APIServer

SKIP_PREFIX = "conformance: capability"  # as agent_core.testing.conformance words its skips


@pytest.fixture
def agent_api_server(tmp_path: Path) -> Iterator[APIServer]:
    """A real API server on 127.0.0.1 over a fresh SQLite file, without auth."""
    with APIServer(f"sqlite:///{tmp_path / 'api.db'}") as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agent_capability(*names): conformance test needing backend capabilities (skipped, and reported, "
        "if not claimed)",
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        if reason.startswith(SKIP_PREFIX):
            reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return
    terminalreporter.section("agent conformance: capabilities not tested")
    for reason, count in sorted(reasons.items()):
        terminalreporter.line(f"{reason.removeprefix(SKIP_PREFIX + ' ')} ({count} test{'s' if count > 1 else ''})")
