"""``/api/session``: sign a browser page in and out with cookies (``tau.http.cookie_session``).

* ``POST /api/session`` ``{"username", "password", "totp"?, "scope"?}`` — the password grant of
  ``tau.auth.oauth`` (same throttling, 2FA, metrics); the tokens go into HttpOnly cookies and the
  body carries only ``{"user", "csrf_token", "expires_in"}``. With ``Authorization: Bearer`` and
  no body fields, that token itself becomes the session (an admin opening a ``#token=`` link).
* ``GET /api/session`` — who the cookie speaks for and the CSRF token (after a page reload).
* ``POST /api/session/refresh`` — rotates the refresh cookie (reuse detection included).
* ``POST /api/session/logout`` — revokes the refresh family and clears both cookies.

The POSTs take only ``application/json`` and refuse a foreign ``Origin``: a cross-site form can
send neither, so no other site can sign a browser in or out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.auth import scopes
from tau.auth.oauth import SCOPES, ClientIdentity, OAuth, OAuthError
from tau.http import cookie_session as cs
from tau.http.auth import authenticate_request
from tau.http.errors import HttpError
from tau.http.oauth import base_url, http_error
from tau.http.router import Response, json_response, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

CLIENT_ID = "tau-web-session"


def _same_origin_json(registry: Registry, request: Any) -> None:
    ctype = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if ctype != b"application/json":
        raise HttpError(415, "unsupported_media_type", "send application/json")
    origin = request.getHeader(b"origin")
    if origin is None:
        return
    host = (request.getHeader(b"host") or b"").decode("latin-1")
    own = {base_url(registry, request), ("https://" if request.isSecure() else "http://") + host}
    if origin.decode("latin-1").rstrip("/") not in own:
        raise HttpError(403, "cross_origin", "this request must come from tau's own pages")


class Sessions:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.oauth = OAuth(registry, refresh_ttl=registry.config.auth.session_ttl)

    async def _answer(self, request: Any, tokens: dict[str, Any]) -> Response:
        """Set the cookies for ``tokens`` (an OAuth token response) and describe the session."""
        access = tokens["access_token"]
        claims = self.registry.tokens.verify(access)
        ttl = int(claims["exp"] - self.registry.clock.seconds())
        cs.set_cookies(self.registry, request, access, ttl, tokens.get("refresh_token"), self.oauth.refresh_ttl)
        user = await self.registry.users.get(claims["sub"])
        return json_response({"user": user.public(), "csrf_token": cs.csrf_token(self.registry, claims),
                              "expires_in": ttl}, headers={"Pragma": "no-cache"})

    async def login(self, request: Any) -> Response:
        _same_origin_json(self.registry, request)
        if request.getHeader(b"authorization"):
            await authenticate_request(self.registry, request)
            token = request.getHeader(b"authorization").partition(b" ")[2].strip().decode("ascii")
            return await self._answer(request, {"access_token": token})
        body = await read_json_object(request)
        scope = " ".join(s for s in str(body.get("scope", "")).split() if s in SCOPES.split())
        try:
            tokens = await self.oauth.password_grant(str(body.get("username", "")), str(body.get("password", "")),
                                                     str(body.get("totp", "") or ""), scope, CLIENT_ID,
                                                     request.client_ip)
        except OAuthError as exc:
            raise http_error(exc)
        return await self._answer(request, tokens)

    async def current(self, request: Any) -> Response:
        claims = cs.session_claims(self.registry, request)
        return json_response({"user": request.user.public(), "expires_in": int(claims["exp"] -
                              self.registry.clock.seconds()) if claims else None,
                              "csrf_token": cs.csrf_token(self.registry, claims) if claims else None})

    async def refresh(self, request: Any) -> Response:
        _same_origin_json(self.registry, request)
        token = cs.cookie(self.registry, request, 1)
        if token is None:
            raise HttpError(401, "unauthorized", "no session")
        try:
            tokens = await self.oauth.refresh_grant(token, ClientIdentity(CLIENT_ID, False))
        except OAuthError:
            cs.clear_cookies(self.registry, request)
            raise HttpError(401, "invalid_token", "the session ended; sign in again")
        return await self._answer(request, tokens)

    async def logout(self, request: Any) -> Response:
        """End the session the cookies name: its refresh family and the access cookie's ``sid``
        are revoked, and every node learns it now (the old access cookie is refused at once)."""
        _same_origin_json(self.registry, request)
        revoked = False
        token = cs.cookie(self.registry, request, 1)
        if token is not None and len(token) <= 200:
            revoked = await self.oauth.revoke_refresh_token(token)
        access = cs.cookie(self.registry, request, 0)
        if access is not None:  # a bearer token turned cookie has no refresh cookie: end its session too
            revoked = await self.oauth.revoke_access_token(access) or revoked
        if revoked:
            await self.registry.revocations.changed()
        cs.clear_cookies(self.registry, request)
        return Response(b"", 204, "text/plain")


def register(registry: Registry, http: Any) -> None:
    sessions = Sessions(registry)
    http.route("POST", "/api/session", sessions.login, auth="none")
    http.route("GET", "/api/session", sessions.current, scope=scopes.ANY)
    http.route("POST", "/api/session/refresh", sessions.refresh, auth="none")
    http.route("POST", "/api/session/logout", sessions.logout, auth="none")
    http.accept_session_cookie("/api/session")
    http.accept_session_cookie("/api/me")
