"""The end-to-end fixtures (real API server, real ``agent start`` processes) for the local backend's tests."""

from tests.e2e.conftest import (  # noqa: F401  (fixtures re-exported for this directory)
    agent_env,
    agent_home,
    client,
    create_run,
    run_cli,
    server,
    start_agent,
)
