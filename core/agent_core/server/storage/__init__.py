"""Storage of the orchestration API: SQLAlchemy Core on SQLite or PostgreSQL."""

from agent_core.server.storage.db import make_engine
from agent_core.server.storage.migrations import upgrade
from agent_core.server.storage.store import Principal, Store

__all__ = ["Principal", "Store", "make_engine", "upgrade"]
