"""Database engines: the dialect differences, so queries are written once with ``?``."""

from __future__ import annotations

from tau.storage.engines.base import Engine
from tau.storage.engines.postgres import PostgresEngine
from tau.storage.engines.sqlite import SqliteEngine


def create_engine(url: str, pool_min: int = 1, pool_max: int = 8, busy_timeout_ms: int | None = None) -> Engine:
    """The engine for a ``[database] url`` (already validated by the config)."""
    if url.startswith("sqlite:///"):
        if busy_timeout_ms is None:
            return SqliteEngine(url[len("sqlite:///"):])
        return SqliteEngine(url[len("sqlite:///"):], busy_timeout_ms)
    return PostgresEngine(url, pool_min=pool_min, pool_max=pool_max)


__all__ = ["Engine", "PostgresEngine", "SqliteEngine", "create_engine"]
