"""SQLite: the embedded default. WAL, foreign keys, busy timeout, one writer connection."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from tau.storage.engines.base import DatabaseUnavailable, Engine

#: how long a transaction waits for another process's write lock before "database is locked" (then
#: tau answers 503 and fails fast until the lock is gone, see tau.storage.breaker); tau itself writes
#: through one connection, so only the CLI or another program can hold the lock
BUSY_TIMEOUT_MS = 5_000
PROGRESS_STEPS = 10_000   # VM instructions between two looks at the clock (~0.1 ms of work)


class SqliteEngine(Engine):
    name = "sqlite"
    single_connection = True
    schema_tokens = {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "bigint": "INTEGER",
        "blob": "BLOB",
        "text_ci": "TEXT COLLATE NOCASE",
    }

    def __init__(self, path: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms

    def connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise DatabaseUnavailable(f"cannot open {self.path}: folder {parent} does not exist")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=self.busy_timeout_ms / 1000)
            self.on_connect(conn)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open {self.path}: {exc}") from exc
        return conn

    def pool_args(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        kwargs = {
            "database": self.path,
            "isolation_level": None,
            "check_same_thread": False,
            "timeout": self.busy_timeout_ms / 1000,
            "cp_min": 1,
            "cp_max": 1,
            "cp_openfun": self.on_connect,
        }
        return "sqlite3", (), kwargs

    def on_connect(self, conn: Any) -> None:
        # isolation_level=None: we issue BEGIN ourselves (see begin), so DDL in migrations is
        # transactional too and adbapi's commit()/rollback() end what we began.
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
        # Turning a brand-new file into WAL needs an exclusive lock, and SQLite answers "locked" at
        # once (no busy wait) when two connections race for it: retry within the busy timeout.
        tries = max(1, self.busy_timeout_ms // 50)
        for attempt in range(tries):
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == tries - 1:
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous=FULL")  # 250/OK means durable, even across power loss
        conn.execute("PRAGMA foreign_keys=ON")

    def begin(self, cursor: Any, readonly: bool) -> None:
        # IMMEDIATE takes the write lock up front: no deadlock upgrading a read lock when the CLI
        # writes at the same time as the daemon.
        cursor.execute("BEGIN" if readonly else "BEGIN IMMEDIATE")

    def watch(self, conn: Any, budget: Any) -> None:
        # called every PROGRESS_STEPS virtual machine instructions; a true result aborts the
        # statement with "interrupted"
        conn.set_progress_handler(budget.expired, PROGRESS_STEPS)

    def unwatch(self, conn: Any) -> None:
        conn.set_progress_handler(None, 0)

    def interrupt(self, conn: Any) -> None:
        conn.interrupt()

    def is_timeout(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "interrupted" in str(exc)

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)

    def describe(self) -> str:
        return f"sqlite:///{self.path}"
