"""JWT access tokens (ES256, key derived from the installation secret) with a verify cache.

DAV and API clients present the same token many times a second; verifying an ECDSA signature
costs ~100 µs, so a verified token's claims are cached until its expiry (bounded LRU).
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from typing import Any

import jwt

from tau.keys import Keys

CACHE_SIZE = 10_000


class InvalidToken(Exception):
    pass


class TokenService:
    def __init__(self, keys: Keys, issuer: str, ttl: int, clock: Any) -> None:
        self._keys = keys
        self.issuer = issuer
        self.ttl = ttl
        self._clock = clock
        self._private = keys.jwt_private_key
        self._public = self._private.public_key()
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def issue(self, subject: str, scope: str = "", session: str | None = None, client_id: str = "") -> str:
        now = int(self._clock.seconds())
        claims = {"iss": self.issuer, "sub": subject, "aud": "tau", "iat": now, "nbf": now - 5,
                  "exp": now + self.ttl, "jti": secrets.token_urlsafe(12), "scope": scope}
        if session:
            claims["sid"] = session
        if client_id:
            claims["client_id"] = client_id
        return jwt.encode(claims, self._private, algorithm="ES256", headers={"kid": self._keys.jwt_kid})

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of a valid token; raises InvalidToken."""
        now = self._clock.seconds()
        cached = self._cache.get(token)
        if cached is not None:
            if cached["exp"] > now:
                self._cache.move_to_end(token)
                return cached
            del self._cache[token]
        if len(token) > 4096:
            raise InvalidToken("token too long")
        try:
            claims = jwt.decode(token, self._public, algorithms=["ES256"], audience="tau", issuer=self.issuer,
                                options={"require": ["exp", "iat", "sub"], "verify_exp": False,
                                         "verify_iat": False, "verify_nbf": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # expiry checked against our clock (testable, and one clock for the whole daemon)
        if claims["exp"] <= now or claims.get("nbf", 0) > now + 5:
            raise InvalidToken("token expired")
        self._cache[token] = claims
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return claims


def still_valid_for(claims: dict[str, Any], user: Any) -> bool:
    """A verified token still speaks for ``user``: the account exists, is enabled, and its password
    has not changed since the token was issued (one second of slack for clock granularity)."""
    return user is not None and not user.disabled and claims.get("iat", 0) >= user.password_changed_at - 1
