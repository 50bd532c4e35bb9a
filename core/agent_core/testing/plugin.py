"""pytest plugin of agent-core: fixtures for a real API server (and, for backends, the conformance kit).

Loaded automatically where agent-core is installed (``pytest11`` entry point).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_core.testing.servers import APIServer


@pytest.fixture
def agent_api_server(tmp_path: Path) -> Iterator[APIServer]:
    """A real API server on 127.0.0.1 over a fresh SQLite file, without auth."""
    with APIServer(f"sqlite:///{tmp_path / 'api.db'}") as server:
        yield server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "agent_capability(name): conformance test needing a backend capability (skipped if not claimed)"
    )
