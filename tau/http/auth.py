"""Who is calling: ``Authorization: Bearer JWT`` (everywhere) or Basic (DAV clients, opt-in).

Bearer: the JWT is verified from the token service's cache and the account from the user cache,
so an authenticated request costs no database round trip in the steady state. Basic goes
through the authenticator (argon2id once, then its keyed cache) with the client IP for throttling.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tau.auth.accounts import User
from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.auth.tokens import InvalidToken, still_valid_for
from tau.http import cookie_session
from tau.http.errors import HttpError


def _unauthorized(message: str, allow_basic: bool, error: str = "unauthorized") -> HttpError:
    challenge = 'Bearer realm="tau"'
    if allow_basic:
        challenge = 'Basic realm="tau", charset="UTF-8", ' + challenge
    return HttpError(401, error, message, headers={"WWW-Authenticate": challenge})


async def authenticate_request(registry: Any, request: Any, allow_basic: bool = False,
                               allow_cookie: bool = False) -> User:
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
            claims = registry.tokens.verify(value.decode("ascii"))
        except (InvalidToken, UnicodeDecodeError):
            raise _unauthorized("invalid or expired token", allow_basic, "invalid_token")
        user = await registry.users.get(claims["sub"])
        if not still_valid_for(claims, user):
            raise _unauthorized("token no longer valid", allow_basic, "invalid_token")
        return user
    if scheme == b"basic" and allow_basic:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
            username, sep, password = decoded.partition(":")
            if not sep:
                raise ValueError
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _unauthorized("malformed Basic credentials", allow_basic)
        try:
            return await registry.authenticator.authenticate(username, password, request.client_ip)
        except LoginThrottled as exc:
            raise HttpError(429, "too_many_failed_logins", str(exc),
                            headers={"Retry-After": str(int(exc.retry_after) + 1)})
        except LoginFailed:
            raise _unauthorized("invalid credentials", allow_basic)
    raise _unauthorized("unsupported authorization scheme", allow_basic)
