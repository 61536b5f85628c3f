"""The OAuth 2.0 authorization server's grants (RFC 6749 §4.1.3, §4.3, §6; PKCE RFC 7636; RFC 7009),
next to their store (``oauth_store``, ``oauth_clients``); the HTTP endpoints are ``tau.http.oauth``.

Grants: ``password`` (first-party clients, scripts and the cookie session of ``tau.http.session``),
``refresh_token`` (rotation with reuse detection), ``authorization_code`` with PKCE S256 only.
Scopes (tau.auth.scopes): the password grant without ``scope=`` gets every user scope, plus
``admin`` for an administrator; a code grant without one gets identity only; ``admin`` is never
granted to a non-administrator. Failures are ``OAuthError`` (RFC 6749 §5.2 code, HTTP status and
headers), which the HTTP edge turns into its JSON error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tau.auth import oauth_clients, oauth_store, revocation_store, scopes, totp
from tau.auth.accounts import User
from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.auth.oauth_store import GrantError
from tau.auth.tokens import InvalidToken

if TYPE_CHECKING:
    from tau.registry import Registry

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
SCOPES = " ".join(scopes.DESCRIPTIONS)
BEARER = {"WWW-Authenticate": 'Bearer realm="tau"'}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: ``code`` (``invalid_grant``...), the HTTP status and headers to send."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@dataclass(frozen=True)
class ClientIdentity:
    client_id: str  # "" when the request named no client
    authenticated: bool  # True only for a confidential client whose secret matched


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


async def require_owner(registry: Registry, identity: ClientIdentity, owner: str) -> None:
    """A grant issued to ``owner`` may be used only by it: a confidential owner must have
    authenticated, and an authenticated client may not use another client's grant."""
    if identity.authenticated:
        if identity.client_id != owner:
            raise OAuthError(400, "invalid_grant", "this grant was issued to another client")
        return
    _, stored = await registry.db.run("oauth_client_secret", oauth_clients.get_secret_hash, owner, readonly=True)
    if stored is not None:
        raise OAuthError(401, "invalid_client", "client authentication is required for this client",
                         {"WWW-Authenticate": 'Basic realm="tau"'})


class OAuth:
    """Issues, rotates and revokes tokens; ``refresh_ttl`` is the refresh token's (session's) life."""

    def __init__(self, registry: Registry, refresh_ttl: int | None = None) -> None:
        self.registry = registry
        self.refresh_ttl: int = refresh_ttl if refresh_ttl is not None else registry.config.auth.refresh_token_ttl

    def token_hash(self, token: str) -> str:
        """The keyed hash a refresh token is stored and looked up by (never the token itself)."""
        return str(self.registry.keys.mac("refresh-token", token))

    async def issue(self, user: User, family: str | None = None, scope: str = "", client_id: str = "",
                    refresh_token: str | None = None) -> dict[str, Any]:
        """Access token plus a refresh token; a new family unless one is given (rotation)."""
        if refresh_token is None:
            refresh_token = secrets.token_urlsafe(32)
            family = family or secrets.token_hex(16)
            await self.registry.db.run("oauth_store_refresh", oauth_store.store_refresh_token, user.id, family,
                                       self.token_hash(refresh_token), client_id, scope, self.refresh_ttl)
        access = self.registry.tokens.issue(user.address, scope=scope, session=family, client_id=client_id)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.registry.tokens.ttl,
                "refresh_token": refresh_token, "scope": scope}

    async def password_grant(self, username: str, password: str, code: str, scope: str, client_id: str,
                             ip: str | None) -> dict[str, Any]:
        """RFC 6749 §4.3 through the one login path, then the TOTP ``code`` for a 2FA account."""
        if not username or not password:
            raise OAuthError(400, "invalid_request", "username and password are required")
        try:
            user = await self.registry.authenticator.authenticate(username, password, ip, second_factor=True)
        except LoginThrottled as exc:
            raise OAuthError(429, "too_many_failed_logins", str(exc), {"Retry-After": str(int(exc.retry_after) + 1)})
        except LoginFailed:
            self.registry.metrics.logins.labels("http", "failed").inc()
            raise OAuthError(401, "invalid_grant", "invalid username or password", BEARER)
        try:  # TOTP 2FA (tau.auth.totp): 401 totp_required / invalid_totp
            await totp.check_login(self.registry, user, code)
        except totp.TwoFactorError as exc:
            if exc.code == "invalid_totp":
                self.registry.throttle.failure(user.address, ip)
            raise OAuthError(401, exc.code, exc.message, BEARER)
        granted = scopes.grantable(user, scope) if scope.strip() else scopes.password_default(user)
        if not granted:
            raise OAuthError(400, "invalid_scope", "none of the requested scopes can be granted")
        self.registry.metrics.logins.labels("http", "ok").inc()
        return await self.issue(user, scope=" ".join(granted), client_id=client_id)

    async def refresh_grant(self, presented: str, client: ClientIdentity) -> dict[str, Any]:
        """RFC 6749 §6: rotate the refresh token; a reused one revokes its whole family."""
        if not presented or len(presented) > 200:
            raise OAuthError(400, "invalid_request", "refresh_token is required")
        owner = await self.registry.db.run("oauth_refresh_owner", oauth_clients.refresh_owner,
                                           self.token_hash(presented), readonly=True)
        if owner is not None:  # checked before the token is spent: a failed try does not burn it
            await require_owner(self.registry, client, owner)
        new_token = secrets.token_urlsafe(32)
        try:
            outcome = await self.registry.db.run("oauth_rotate_refresh", oauth_store.rotate_refresh_token,
                                                 self.token_hash(presented), self.token_hash(new_token),
                                                 self.refresh_ttl)
        except GrantError as exc:
            raise OAuthError(400, exc.code, exc.message)
        if isinstance(outcome, GrantError):  # reuse: the family was revoked on the way
            await self.registry.revocations.changed()
            raise OAuthError(400, outcome.code, outcome.message)
        return await self.issue(outcome.user, family=outcome.family, scope=outcome.scope,
                                client_id=outcome.client_id, refresh_token=new_token)

    async def code_grant(self, code: str, verifier: str, redirect_uri: str, client_id: str) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with PKCE S256 (RFC 7636 §4.6); a reused code revokes what it issued."""
        if not code or len(code) > 200:
            raise OAuthError(400, "invalid_request", "code is required")
        if not verifier:
            raise OAuthError(400, "invalid_request", "code_verifier is required (PKCE)")
        if not VERIFIER.match(verifier):
            raise OAuthError(400, "invalid_request", "code_verifier must be 43-128 unreserved characters")
        code_hash = self.registry.keys.mac("auth-code", code)
        try:
            outcome = await self.registry.db.run("oauth_spend_code", oauth_store.spend_code, code_hash)
        except GrantError as exc:
            raise OAuthError(400, exc.code, exc.message)
        if isinstance(outcome, GrantError):  # reuse: what the first use issued was revoked
            await self.registry.revocations.changed()
            raise OAuthError(400, outcome.code, outcome.message)
        if client_id != outcome.client_id:
            raise OAuthError(400, "invalid_grant", "client_id does not match the authorization request")
        if redirect_uri != outcome.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match the authorization request")
        if not hmac.compare_digest(s256(verifier), outcome.challenge):
            raise OAuthError(400, "invalid_grant", "code_verifier does not match the code_challenge")
        granted = scopes.grantable(outcome.user, outcome.scope) or scopes.IDENTITY
        return await self.issue(outcome.user, family=oauth_store.code_family(code_hash), scope=" ".join(granted),
                                client_id=outcome.client_id)

    async def revoke_refresh_token(self, token: str, client: ClientIdentity | None = None) -> bool:
        """End the family of this refresh token; ``client`` (when given) must own it. False if unknown."""
        if client is not None:
            owner = await self.registry.db.run("oauth_refresh_owner", oauth_clients.refresh_owner,
                                               self.token_hash(token), readonly=True)
            if owner is not None:  # a confidential client's tokens are revoked by that client only
                await require_owner(self.registry, client, owner)
        return bool(await self.registry.db.run("oauth_revoke", oauth_store.revoke_by_token, self.token_hash(token)))

    async def revoke_access_token(self, token: str) -> bool:
        """End the session (family) a valid access token names; False for a bad or session-less one."""
        try:
            claims = self.registry.tokens.verify(token)
        except InvalidToken:
            return False
        if not claims.get("sid"):
            return False
        await self.registry.db.run("oauth_revoke_session", revocation_store.revoke_families, [str(claims["sid"])])
        return True
