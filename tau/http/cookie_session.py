"""Browser sessions for tau's own pages: an HttpOnly, SameSite=Strict cookie plus a CSRF token.

The admin page must hold no bearer token page script can read (one injected script would
otherwise carry it away). Its session is two cookies page script cannot see:

* the access cookie: an ordinary short-lived JWT from ``tau.auth.tokens`` (same verification,
  expiry and revocation as a Bearer header: ``sid`` names the refresh family);
* the refresh cookie: a refresh token of the OAuth machinery (rotation, reuse detection),
  sent only to ``/api/session`` (its Path) so no other route ever sees it.

Both are ``HttpOnly; SameSite=Strict`` and ``Secure`` (with the ``__Host-``/``__Secure-`` name
prefixes) when tau is reached over https. A cookie authenticates only routes that opt in
(``Router.accept_session_cookie``: the admin API, ``/api/me``, ``/api/session``), never a DAV or
Basic-auth mount, and a state-changing request authenticated by it must carry
``X-CSRF-Token``: an HMAC of the session id that page script learns from ``GET /api/session``
(a cross-site page can neither read it nor set custom headers without CORS, which tau never
grants).
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from tau.auth.tokens import InvalidToken
from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.registry import Registry

ACCESS, REFRESH = "tau_session", "tau_refresh"
REFRESH_PATH = "/api/session"
CSRF_HEADER = b"x-csrf-token"
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})


def is_secure(registry: Registry, request: Any) -> bool:
    """https to the browser: TLS here, or a TLS-terminating proxy named by ``[tau] public_url``."""
    public = registry.config.tau.public_url or ""
    return bool(request.isSecure()) or public.startswith("https://")


def names(secure: bool) -> tuple[str, str]:
    """(access, refresh) cookie names; the prefixes make browsers insist on Secure (and Path=/)."""
    return ("__Host-" + ACCESS, "__Secure-" + REFRESH) if secure else (ACCESS, REFRESH)


def cookie(registry: Registry, request: Any, which: int) -> str | None:
    """The access (0) or refresh (1) cookie's value, if the request has a sane one."""
    raw = request.getCookie(names(is_secure(registry, request))[which].encode())
    if not raw or len(raw) > 4096:
        return None
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        return None


def csrf_token(registry: Registry, claims: dict[str, Any]) -> str:
    """The CSRF token bound to a session: stable across refreshes of the same login."""
    return registry.keys.mac("session-csrf", str(claims.get("sid") or claims.get("jti") or claims["sub"]))


def session_claims(registry: Registry, request: Any) -> dict[str, Any] | None:
    """Claims of a valid access cookie, or None."""
    token = cookie(registry, request, 0)
    if token is None:
        return None
    try:
        return registry.tokens.verify(token)  # type: ignore[no-any-return]
    except InvalidToken:
        return None


def bearer_from_cookie(registry: Registry, request: Any) -> bytes | None:
    """``Bearer JWT`` from the access cookie (the route accepts it; the caller checked that).

    A state-changing request without the session's CSRF token is refused with 403 here, before
    anything else looks at it.
    """
    claims = session_claims(registry, request)
    if claims is None:
        return None
    if request.method not in SAFE_METHODS:
        given = (request.getHeader(CSRF_HEADER) or b"").decode("latin-1")
        if not given or not hmac.compare_digest(given, csrf_token(registry, claims)):
            raise HttpError(403, "csrf_failed", "a request authenticated by the session cookie needs the "
                            "X-CSRF-Token header")
    return b"Bearer " + cookie(registry, request, 0).encode()  # type: ignore[union-attr]


def set_cookies(registry: Registry, request: Any, access: str, access_ttl: int, refresh: str | None = None,
                refresh_ttl: int = 0) -> None:
    secure = is_secure(registry, request)
    access_name, refresh_name = names(secure)
    request.addCookie(access_name, access, path="/", max_age=str(max(0, access_ttl)), secure=secure or None,
                      httpOnly=True, sameSite="strict")
    if refresh is not None:
        request.addCookie(refresh_name, refresh, path=REFRESH_PATH, max_age=str(max(0, refresh_ttl)),
                          secure=secure or None, httpOnly=True, sameSite="strict")


def clear_cookies(registry: Registry, request: Any) -> None:
    secure = is_secure(registry, request)
    access_name, refresh_name = names(secure)
    for name, path in ((access_name, "/"), (refresh_name, REFRESH_PATH)):
        request.addCookie(name, "", path=path, max_age="0", expires="Thu, 01 Jan 1970 00:00:00 GMT",
                          secure=secure or None, httpOnly=True, sameSite="strict")
