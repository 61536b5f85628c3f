"""What differs between SQLite and PostgreSQL, behind one small class (as Synapse's engines do)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message is meant for an operator."""


class Engine(ABC):
    name: str
    #: substitutions for ``{token}`` in schema files
    schema_tokens: dict[str, str]
    #: True when the pool allows only one connection (SQLite's single writer)
    single_connection: bool = False
    #: one ``execute`` may carry several statements separated by ``;`` (``Txn.send_ahead``)
    multi_statement: bool = False

    @abstractmethod
    def connect(self) -> Any:
        """A new DB-API connection, ready for use (pragmas, encoding)."""

    @abstractmethod
    def pool_args(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        """(dbapi module name, args, kwargs) for ``adbapi.ConnectionPool``."""

    @abstractmethod
    def on_connect(self, conn: Any) -> None:
        """Run once per new connection (pragmas, session settings)."""

    def convert(self, sql: str) -> str:
        """Rewrite a ``?``-placeholder query for this engine's paramstyle."""
        return sql

    def begin(self, cursor: Any, readonly: bool) -> None:  # noqa: B027 - optional hook, no-op by default
        """Start a transaction explicitly where the driver does not."""

    def lock_for_migration(self, cursor: Any) -> None:  # noqa: B027 - optional hook, no-op by default
        """Serialise migrations between nodes starting at once."""

    def commit_order_statement(self, key: int) -> str:
        """The statement that holds ``key`` until this transaction ends, so writers holding it
        commit one after another; none where a single writer already does (SQLite)."""
        return ""

    def set_session_timeout(self, conn: Any, seconds: float) -> None:  # noqa: B027 - optional hook
        """The statement budget of a new pooled connection (engines that enforce it server-side)."""

    def set_timeout(self, cursor: Any, seconds: float) -> None:  # noqa: B027 - optional hook
        """This transaction's statement budget, when it differs from the connection's."""

    def watch(self, conn: Any, budget: Any) -> None:  # noqa: B027 - optional hook
        """Enforce ``budget`` (a storage.budget.Budget) on ``conn`` where the server cannot."""

    def unwatch(self, conn: Any) -> None:  # noqa: B027 - optional hook
        """Undo :meth:`watch`."""

    def interrupt(self, conn: Any) -> None:  # noqa: B027 - optional hook
        """From another thread: stop the statement running on ``conn``."""

    def is_timeout(self, exc: BaseException) -> bool:
        """The statement was stopped by its budget or by :meth:`interrupt`."""
        return False

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """Serialisation failures, deadlocks, busy databases: worth running the transaction again."""

    @abstractmethod
    def describe(self) -> str:
        """The URL without secrets, for logs and errors."""


_QMARK = re.compile(r"\?")


def qmark_to_format(sql: str) -> str:
    """``?`` → ``%s`` with literal ``%`` escaped (psycopg2's paramstyle)."""
    return _QMARK.sub("%s", sql.replace("%", "%%"))
