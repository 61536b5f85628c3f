"""A short-lived cache of user records for per-request checks (token still valid? account enabled?).

A bearer request must not cost a database round trip: the JWT is verified from cache and the
user record from here, so disabling an account takes effect within ``ttl`` seconds.
"""

from __future__ import annotations

from typing import Any

from tau.auth import accounts
from tau.auth.accounts import User
from tau.storage.database import Database

TTL = 10.0
MAX = 20_000


class UserCache:
    def __init__(self, db: Database, clock: Any, ttl: float = TTL) -> None:
        self._db = db
        self._clock = clock
        self._ttl = ttl
        self._entries: dict[str, tuple[float, User | None]] = {}

    async def get(self, address: str) -> User | None:
        now = self._clock.seconds()
        hit = self._entries.get(address)
        if hit is not None and hit[0] > now:
            return hit[1]
        user = await self._db.run("user_cache_get", accounts.get_user, address, readonly=True)
        if len(self._entries) >= MAX:
            self._entries.clear()
        self._entries[address] = (now + self._ttl, user)
        return user

    def invalidate(self, address: str | None = None) -> None:
        if address is None:
            self._entries.clear()
        else:
            self._entries.pop(address, None)
