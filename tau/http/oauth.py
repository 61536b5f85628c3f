"""``POST /oauth2/token`` (RFC 6749 §4.1.3, §4.3, §6; PKCE RFC 7636), discovery and JWKS.

Grants: ``password`` (first-party clients and scripts), ``refresh_token`` (rotation with reuse
detection), ``authorization_code`` with PKCE S256 only (the consent page is in ``consent.py``).
Errors carry both the contract's fields and RFC 6749's ``error_description``.
Scopes (tau.auth.scopes): the password grant without ``scope=`` gets every user scope, plus
``admin`` for an administrator; a code grant without one gets identity only; ``admin`` is never
granted to a non-administrator. Every token issued now names its scopes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Any

from tau.auth import oauth_clients, oauth_store, scopes, totp
from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.auth.oauth_store import GrantError
from tau.http import client_auth
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_form

if TYPE_CHECKING:
    from tau.registry import Registry

VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
SCOPES = " ".join(scopes.DESCRIPTIONS)


def _oauth_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HttpError:
    return HttpError(status, code, message, headers=headers, extra={"error_description": message})


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class OAuth:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.refresh_ttl = registry.config.get("auth", "refresh_token_ttl")

    def _hash(self, token: str) -> str:
        return self.registry.keys.mac("refresh-token", token)

    async def issue(self, user: Any, family: str | None = None, scope: str = "", client_id: str = "",
                    refresh_hash: str | None = None, refresh_token: str | None = None) -> dict[str, Any]:
        """Access token plus a refresh token; a new family unless one is given (rotation)."""
        if refresh_token is None:
            refresh_token = secrets.token_urlsafe(32)
            family = family or secrets.token_hex(16)
            await self.registry.db.run("oauth_store_refresh", oauth_store.store_refresh_token, user.id, family,
                                       self._hash(refresh_token), client_id, scope, self.refresh_ttl)
        access = self.registry.tokens.issue(user.address, scope=scope, session=family, client_id=client_id)
        return {"access_token": access, "token_type": "Bearer", "expires_in": self.registry.tokens.ttl,
                "refresh_token": refresh_token, "scope": scope}

    async def token(self, request: Any) -> Response:
        try:
            form = read_form(request)
        except HttpError as exc:
            raise _oauth_error(400, "invalid_request", exc.message)
        grant = form.get("grant_type", "")
        client = await client_auth.authenticate_client(self.registry, request, form)
        if grant == "password":
            body = await self._password(request, form, form.get("scope", ""), client.client_id)
        elif grant == "refresh_token":
            body = await self._refresh(form, client)
        elif grant == "authorization_code":
            body = await self._code(form, client.client_id)
        elif not grant:
            raise _oauth_error(400, "invalid_request", "grant_type is required")
        else:
            raise _oauth_error(400, "unsupported_grant_type", f"grant_type {grant[:40]!r} is not supported")
        return json_response(body, headers={"Pragma": "no-cache"})

    async def _password(self, request: Any, form: dict[str, str], scope: str, client_id: str) -> dict[str, Any]:
        username, password = form.get("username", ""), form.get("password", "")
        if not username or not password:
            raise _oauth_error(400, "invalid_request", "username and password are required")
        try:
            user = await self.registry.authenticator.authenticate(username, password, request.client_ip,
                                                                  second_factor=True)
        except LoginThrottled as exc:
            raise _oauth_error(429, "too_many_failed_logins", str(exc),
                               {"Retry-After": str(int(exc.retry_after) + 1)})
        except LoginFailed:
            self.registry.metrics.logins.labels("http", "failed").inc()
            raise _oauth_error(401, "invalid_grant", "invalid username or password",
                               {"WWW-Authenticate": 'Bearer realm="tau"'})
        try:  # TOTP 2FA (tau.auth.totp): 401 totp_required / invalid_totp
            await totp.check_login(self.registry, user, form.get("totp", ""))
        except totp.TwoFactorError as exc:
            if exc.code == "invalid_totp":
                self.registry.throttle.failure(user.address, request.client_ip)
            raise _oauth_error(401, exc.code, exc.message, {"WWW-Authenticate": 'Bearer realm="tau"'})
        granted = scopes.grantable(user, scope) if scope.strip() else scopes.password_default(user)
        if not granted:
            raise _oauth_error(400, "invalid_scope", "none of the requested scopes can be granted")
        self.registry.metrics.logins.labels("http", "ok").inc()
        return await self.issue(user, scope=" ".join(granted), client_id=client_id)

    async def _refresh(self, form: dict[str, str], client: client_auth.ClientIdentity) -> dict[str, Any]:
        presented = form.get("refresh_token", "")
        if not presented or len(presented) > 200:
            raise _oauth_error(400, "invalid_request", "refresh_token is required")
        owner = await self.registry.db.run("oauth_refresh_owner", oauth_clients.refresh_owner,
                                           self._hash(presented), readonly=True)
        if owner is not None:  # checked before the token is spent: a failed try does not burn it
            await client_auth.require_owner(self.registry, client, owner)
        new_token = secrets.token_urlsafe(32)
        try:
            outcome = await self.registry.db.run("oauth_rotate_refresh", oauth_store.rotate_refresh_token,
                                                 self._hash(presented), self._hash(new_token), self.refresh_ttl)
        except GrantError as exc:
            raise _oauth_error(400, exc.code, exc.message)
        if isinstance(outcome, GrantError):  # reuse: the family was revoked on the way
            await self.registry.revocations.changed()
            raise _oauth_error(400, outcome.code, outcome.message)
        return await self.issue(outcome.user, family=outcome.family, scope=outcome.scope,
                                client_id=outcome.client_id, refresh_token=new_token)

    async def _code(self, form: dict[str, str], client_id: str) -> dict[str, Any]:
        code, verifier = form.get("code", ""), form.get("code_verifier", "")
        if not code or len(code) > 200:
            raise _oauth_error(400, "invalid_request", "code is required")
        if not verifier:
            raise _oauth_error(400, "invalid_request", "code_verifier is required (PKCE)")
        if not VERIFIER.match(verifier):
            raise _oauth_error(400, "invalid_request", "code_verifier must be 43-128 unreserved characters")
        code_hash = self.registry.keys.mac("auth-code", code)
        try:
            outcome = await self.registry.db.run("oauth_spend_code", oauth_store.spend_code, code_hash)
        except GrantError as exc:
            raise _oauth_error(400, exc.code, exc.message)
        if isinstance(outcome, GrantError):  # reuse: what the first use issued was revoked
            await self.registry.revocations.changed()
            raise _oauth_error(400, outcome.code, outcome.message)
        if client_id != outcome.client_id:
            raise _oauth_error(400, "invalid_grant", "client_id does not match the authorization request")
        if form.get("redirect_uri", "") != outcome.redirect_uri:
            raise _oauth_error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        if not hmac.compare_digest(s256(verifier), outcome.challenge):
            raise _oauth_error(400, "invalid_grant", "code_verifier does not match the code_challenge")
        granted = scopes.grantable(outcome.user, outcome.scope) or scopes.IDENTITY
        return await self.issue(outcome.user, family=oauth_store.code_family(code_hash), scope=" ".join(granted),
                                client_id=outcome.client_id)

    async def revoke(self, request: Any) -> Response:
        """RFC 7009: revoking a refresh token, or an access token, ends its whole family (the
        session) on every node within seconds. 200 even for unknown tokens; a confidential client
        authenticates as at the token endpoint."""
        form = read_form(request)
        client = await client_auth.authenticate_client(self.registry, request, form)
        token = form.get("token", "")
        revoked = False
        if token and len(token) <= 200:
            owner = await self.registry.db.run("oauth_refresh_owner", oauth_clients.refresh_owner,
                                               self._hash(token), readonly=True)
            if owner is not None:  # a confidential client's tokens are revoked by that client only
                await client_auth.require_owner(self.registry, client, owner)
            revoked = await self.registry.db.run("oauth_revoke", oauth_store.revoke_by_token, self._hash(token))
        elif token and len(token) <= 4096:
            revoked = await self._revoke_access_token(token)
        if revoked:
            await self.registry.revocations.changed()
        return json_response({})

    async def _revoke_access_token(self, token: str) -> bool:
        from tau.auth import revocation_store
        from tau.auth.tokens import InvalidToken

        try:
            claims = self.registry.tokens.verify(token)
        except InvalidToken:
            return False
        if not claims.get("sid"):
            return False
        await self.registry.db.run("oauth_revoke_session", revocation_store.revoke_families, [str(claims["sid"])])
        return True


def base_url(registry: Registry, request: Any) -> str:
    configured = registry.config.get("tau", "public_url")
    if configured:
        return configured.rstrip("/")
    host = (request.getHeader(b"host") or b"localhost").decode("latin-1")
    if not re.match(r"^[A-Za-z0-9.\-:\[\]]{1,255}$", host):
        host = registry.config.get("tau", "hostname")
    scheme = "https" if request.isSecure() else "http"
    return f"{scheme}://{host}"


def register(registry: Registry, http: Any) -> None:
    from tau.http import consent

    oauth = OAuth(registry)

    async def discovery(request: Any) -> Response:
        base = base_url(registry, request)
        return json_response({
            "issuer": registry.issuer,
            "authorization_endpoint": base + "/oauth2/authorize",
            "token_endpoint": base + "/oauth2/token",
            "revocation_endpoint": base + "/oauth2/revoke",
            "jwks_uri": base + "/oauth2/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "password"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": client_auth.AUTH_METHODS,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": SCOPES.split(),
        })

    async def jwks(request: Any) -> Response:
        return json_response({"keys": [registry.keys.jwk()]})

    http.route("POST", "/oauth2/token", oauth.token, auth="none")
    http.route("POST", "/oauth2/revoke", oauth.revoke, auth="none")
    http.route("GET", "/.well-known/openid-configuration", discovery, auth="none")
    http.route("GET", "/oauth2/jwks", jwks, auth="none")
    consent.register(registry, http, oauth)
