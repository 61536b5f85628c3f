"""Versioned schema deltas, applied in order before any port binds and by ``tau migrate``.

Deltas are ``schema/NNNN_name.sql`` written once with ``{id}``/``{bigint}``/``{blob}`` tokens;
``NNNN_name.<engine>.sql`` replaces one for a single engine. Applied versions are recorded in
``schema_version``. A database newer than this code refuses to start. On PostgreSQL the whole run
holds an advisory lock so nodes starting together migrate once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from tau.storage.database import SyncDatabase, Txn

_DELTA = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(sqlite|postgres))?\.sql$")


class SchemaTooNew(Exception):
    """The database was migrated by a newer tau."""


@dataclass(frozen=True)
class Delta:
    version: int
    name: str
    sql: str


def load_deltas(engine_name: str) -> list[Delta]:
    found: dict[int, tuple[str, str, bool]] = {}
    for entry in resources.files("tau.storage").joinpath("schema").iterdir():
        m = _DELTA.match(entry.name)
        if not m:
            continue
        version, name, dialect = int(m.group(1)), m.group(2), m.group(3)
        if dialect and dialect != engine_name:
            continue
        if version in found and found[version][2] and not dialect:
            continue  # the engine-specific file wins
        found[version] = (name, entry.read_text(encoding="utf-8"), bool(dialect))
    return [Delta(v, n, s) for v, (n, s, _) in sorted(found.items())]


def code_version() -> int:
    deltas = load_deltas("sqlite")
    return deltas[-1].version if deltas else 0


def _statements(sql: str, tokens: dict[str, str]) -> list[str]:
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    for token, value in tokens.items():
        body = body.replace("{" + token + "}", value)
    return [s.strip() for s in body.split(";") if s.strip()]


def current_version(txn: Txn) -> int:
    txn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
    return int(txn.scalar("SELECT COALESCE(MAX(version), 0) FROM schema_version") or 0)


def _migrate(txn: Txn) -> list[Delta]:
    txn.engine.lock_for_migration(txn._cursor)
    current = current_version(txn)
    deltas = load_deltas(txn.engine.name)
    newest = deltas[-1].version if deltas else 0
    if current > newest:
        raise SchemaTooNew(
            f"database schema is version {current} but this tau knows only up to {newest}; "
            "upgrade tau (or restore a backup made by this version)")
    applied = []
    for delta in deltas:
        if delta.version <= current:
            continue
        for statement in _statements(delta.sql, txn.engine.schema_tokens):
            txn.execute(statement)
        txn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                    (delta.version, delta.name, int(txn.now)))
        applied.append(delta)
    return applied


def migrate(db: SyncDatabase) -> list[Delta]:
    """Bring the schema up to date in one transaction; returns the deltas applied."""
    return db.run("migrate", _migrate)


def schema_status(db: SyncDatabase) -> tuple[int, int]:
    """(database version, code version)."""
    return db.run("schema_status", current_version), code_version()
