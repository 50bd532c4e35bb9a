"""The agent engine: the poll loop, deployment, monitoring, heartbeat and health API."""
