"""Engine-independent table dumps: catalog queries, dependency order, JSON-safe values.

Backups hold rows as JSON lines (one header line with the column names, then one JSON array per
row), so a SQLite backup restores into PostgreSQL and back: the schema comes from tau's own
migrations on the target, the archive only carries data. Tables are listed from the live
catalog (every engineer's tables are included without a registry of names) and ordered so that
a table comes after the tables it references.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

SKIP = {"schema_version", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"}
FETCH = 500


def list_tables(cur: Any, engine: str) -> list[str]:
    if engine == "sqlite":
        cur.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    else:
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                    " AND table_type = 'BASE TABLE' ORDER BY table_name")
    return [r[0] for r in cur.fetchall() if r[0] not in SKIP and not r[0].startswith("sqlite_")]


def references(cur: Any, engine: str, table: str) -> set[str]:
    """Tables ``table`` has foreign keys to (itself excluded)."""
    if engine == "sqlite":
        cur.execute(f'PRAGMA foreign_key_list("{table}")')
        found = {r[2] for r in cur.fetchall()}
    else:
        cur.execute("SELECT DISTINCT ccu.table_name FROM information_schema.table_constraints tc"
                    " JOIN information_schema.constraint_column_usage ccu"
                    " ON ccu.constraint_name = tc.constraint_name AND ccu.constraint_schema = tc.constraint_schema"
                    " WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = %s"
                    " AND tc.table_schema = current_schema()", (table,))
        found = {r[0] for r in cur.fetchall()}
    found.discard(table)
    return found


def dependency_order(cur: Any, engine: str) -> list[str]:
    """Every table after the ones it references (a stable topological sort by name)."""
    tables = list_tables(cur, engine)
    deps = {t: references(cur, engine, t) & set(tables) for t in tables}
    ordered: list[str] = []
    done: set[str] = set()
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in done and deps[t] <= done]
        if not ready:  # a cycle between tables: keep going by name (restore disables FK checks)
            ready = [min(t for t in tables if t not in done)]
        for t in ready:
            ordered.append(t)
            done.add(t)
    return ordered


def columns(cur: Any, engine: str, table: str) -> list[str]:
    if engine == "sqlite":
        cur.execute(f'PRAGMA table_info("{table}")')
        return [r[1] for r in cur.fetchall()]
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                " AND table_name = %s ORDER BY ordinal_position", (table,))
    return [r[0] for r in cur.fetchall()]


def primary_order(cur: Any, engine: str, table: str, cols: list[str]) -> str:
    """ORDER BY for a deterministic dump: the primary key, else every column."""
    if engine == "sqlite":
        cur.execute(f'PRAGMA table_info("{table}")')
        pk = [r[1] for r in sorted(cur.fetchall(), key=lambda r: r[5]) if r[5]]
    else:
        cur.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                    " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
                    (f'"{table}"',))
        pk = [r[0] for r in cur.fetchall()]
    return ", ".join(f'"{c}"' for c in (pk or cols))


def encode(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, bool):
        return int(value)
    return value


def decode(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"])
    return value


def iter_rows(conn: Any, engine: str, table: str, order: str, cols: list[str]) -> Iterator[tuple[Any, ...]]:
    """Rows without holding the table in memory (a server-side cursor on PostgreSQL)."""
    select = ", ".join(f'"{c}"' for c in cols)
    sql = f'SELECT {select} FROM "{table}" ORDER BY {order}'
    if engine == "sqlite":
        cur = conn.cursor()
        cur.execute(sql)
    else:
        cur = conn.cursor(name=f"tau_backup_{table}")
        cur.itersize = FETCH
        cur.execute(sql)
    try:
        while True:
            batch = cur.fetchmany(FETCH)
            if not batch:
                break
            yield from batch
    finally:
        cur.close()


def blob_columns(cur: Any, engine: str, table: str) -> list[str]:
    """Columns that hold blob-store keys (by naming convention: ``blob_key`` / ``*_blob_key``)."""
    return [c for c in columns(cur, engine, table) if c == "blob_key" or c.endswith("_blob_key")]
