"""Which failures mean "storage is unreachable right now" rather than "tau has a bug".

The HTTP edge (``tau.http.site``, ``tau.dav.server``) answers these with 503 and ``Retry-After``
instead of a 500 and a critical traceback: a database restart, a failover, a full SQLite lock or
an object store that went away is an outage the client should wait out and retry (RFC 9110
§15.6.4), not an error in the request. Everything else stays a 500.
"""

from __future__ import annotations

import errno
import sqlite3

#: seconds a client is told to wait before retrying (``Retry-After``)
RETRY_AFTER = 5

#: SQLite errors that are the file, its lock or its disk, never the statement
_SQLITE_OUTAGE = ("database is locked", "database table is locked", "disk i/o error", "unable to open database",
                  "database or disk is full", "readonly database", "locking protocol")

#: OS errors of a storage mount that went away or turned read-only
_OS_OUTAGE = {errno.EIO, errno.ENOTCONN, errno.ESTALE, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
              errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ETIMEDOUT}


def _postgres_down(exc: BaseException) -> bool:
    try:
        import psycopg2
    except ImportError:  # pragma: no cover - psycopg2 is a dependency
        return False
    return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError))


def _network_down(exc: BaseException) -> bool:
    from twisted.enterprise.adbapi import ConnectionLost
    from twisted.internet.error import ConnectError
    from twisted.internet.error import ConnectionLost as TcpLost
    from twisted.internet.error import TimeoutError as TcpTimeout

    if isinstance(exc, (ConnectionLost, ConnectError, TcpLost, TcpTimeout)):
        return True
    name = type(exc).__module__.split(".")[0]
    return name == "urllib3" and type(exc).__name__ in ("MaxRetryError", "ProtocolError", "NewConnectionError",
                                                        "ReadTimeoutError", "ConnectTimeoutError")


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or what caused it) says the database or blob store is unreachable."""
    from tau.blobs.base import BlobStoreUnavailable
    from tau.storage.engines.base import DatabaseUnavailable

    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if isinstance(current, (DatabaseUnavailable, BlobStoreUnavailable)):
            return True
        if isinstance(current, sqlite3.OperationalError):
            return any(text in str(current).lower() for text in _SQLITE_OUTAGE)
        if _postgres_down(current) or _network_down(current):
            return True
        if isinstance(current, OSError) and current.errno in _OS_OUTAGE:
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False
