"""Who is calling: ``Authorization: Bearer JWT`` (everywhere) or Basic (DAV clients, opt-in).

Bearer: the JWT is verified from the token service's cache, its session checked against the
revoked sessions held in memory (tau.auth.revocation) and the account read from the user cache,
so an authenticated request costs no database round trip in the steady state. Both go through the
one login path, ``registry.authenticator`` (Basic: argon2id once, then its keyed cache, with the
client IP for throttling).

What the caller may reach is ``request.scopes`` (tau.auth.scopes): the token's scopes, or the
Basic default; ``scope=`` refuses a caller without it (403 ``insufficient_scope``, RFC 6750 §3.1).
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from tau.auth import scopes
from tau.auth.accounts import User
from tau.auth.authenticator import LoginFailed, LoginThrottled, TokenRefused
from tau.http import cookie_session
from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.registry import Registry


def _unauthorized(message: str, allow_basic: bool, error: str = "unauthorized") -> HttpError:
    challenge = 'Bearer realm="tau"'
    if allow_basic:
        challenge = 'Basic realm="tau", charset="UTF-8", ' + challenge
    return HttpError(401, error, message, headers={"WWW-Authenticate": challenge})


async def authenticate_request(registry: Registry, request: Any, allow_basic: bool = False,
                               allow_cookie: bool = False, scope: str | None = None) -> User:
    """The caller's account; sets ``request.scopes`` and ``request.token_session`` (the token's session,
    None for Basic); refuses a caller lacking ``scope``."""
    user, granted, session = await _identify(registry, request, allow_basic, allow_cookie)
    request.scopes, request.token_session = granted, session
    require_scope(user, granted, scope)
    return user


def require_scope(user: Any, granted: frozenset[str], scope: str | None) -> None:
    """403 unless ``granted`` holds ``scope`` (and, for ``admin``, the user is an administrator)."""
    try:
        scopes.require(granted, scope, user)
    except scopes.ScopeRefused as exc:
        if exc.role:
            raise HttpError(403, "forbidden", exc.message)
        raise HttpError(403, "insufficient_scope", exc.message, extra={"scope": exc.scope}, headers={
            "WWW-Authenticate": f'Bearer realm="tau", error="insufficient_scope", scope="{exc.scope}"'})


async def _identify(registry: Registry, request: Any, allow_basic: bool,
                    allow_cookie: bool) -> tuple[User, frozenset[str], str | None]:
    header = request.getHeader(b"authorization")
    if not header:
        token = request.args.get(b"access_token", [None])[0]
        if token:
            header = b"Bearer " + token
    if not header and allow_cookie:  # the route opted in; 403 here without the CSRF header
        header = cookie_session.bearer_from_cookie(registry, request)
    if not header:
        raise _unauthorized("authentication required", allow_basic)
    scheme, _, value = header.partition(b" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == b"bearer":
        try:
            user, claims = await registry.authenticator.authenticate_token(value.decode("ascii"))
        except UnicodeDecodeError:
            raise _unauthorized("invalid or expired token", allow_basic, "invalid_token")
        except TokenRefused as exc:
            raise _unauthorized(str(exc), allow_basic, "invalid_token")
        sid = claims.get("sid")
        return user, scopes.of_token(claims, user), str(sid) if sid else None
    if scheme == b"basic" and allow_basic:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
            username, sep, password = decoded.partition(":")
            if not sep:
                raise ValueError
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _unauthorized("malformed Basic credentials", allow_basic)
        try:
            user = await registry.authenticator.authenticate(username, password, request.client_ip)
        except LoginThrottled as exc:
            registry.metrics.logins.labels("http_basic", "throttled").inc()
            raise HttpError(429, "too_many_failed_logins", str(exc),
                            headers={"Retry-After": str(int(exc.retry_after) + 1)})
        except LoginFailed:
            registry.metrics.logins.labels("http_basic", "failed").inc()
            raise _unauthorized("invalid credentials", allow_basic)
        registry.metrics.logins.labels("http_basic", "ok").inc()
        return user, scopes.basic_default(), None
    raise _unauthorized("unsupported authorization scheme", allow_basic)
