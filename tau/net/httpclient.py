"""An HTTP client connection pool without Twisted's "Starting factory <...>" line per connection
(the MTA-STS policy fetch, rspamd): pass it as ``pool=`` to ``Agent`` or ``treq``."""

from __future__ import annotations

from typing import Any

from twisted.web.client import HTTPConnectionPool, _HTTP11ClientFactory


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False


class QuietPool(HTTPConnectionPool):
    _factory = _QuietClientFactory


_pools: dict[int, QuietPool] = {}


def quiet_pool(reactor: Any, persistent: bool = False) -> QuietPool:
    """One non-persistent (by default) pool per reactor."""
    pool = _pools.get(id(reactor))
    if pool is None:
        pool = _pools[id(reactor)] = QuietPool(reactor, persistent=persistent)  # type: ignore[no-untyped-call]
    return pool
