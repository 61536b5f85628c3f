"""The OAuth 2.0 endpoints: ``POST /oauth2/token``, ``POST /oauth2/revoke`` (RFC 7009), discovery and
JWKS, and the consent page (``consent.py``). The grants themselves live with their store in
``tau.auth.oauth``; this module reads the form, authenticates the client and turns an
``OAuthError`` into the JSON error carrying both the contract's fields and RFC 6749's
``error_description``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.auth.oauth import SCOPES, OAuth, OAuthError, s256
from tau.http import client_auth
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_form

__all__ = ["SCOPES", "OAuth", "OAuthEndpoints", "base_url", "http_error", "register", "s256"]

if TYPE_CHECKING:
    from tau.registry import Registry


def _oauth_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HttpError:
    return HttpError(status, code, message, headers=headers, extra={"error_description": message})


def http_error(exc: OAuthError) -> HttpError:
    """The HTTP answer for a grant's failure."""
    return _oauth_error(exc.status, exc.code, exc.message, exc.headers)


class OAuthEndpoints:
    def __init__(self, registry: Registry, oauth: OAuth | None = None) -> None:
        self.registry = registry
        self.oauth = oauth or OAuth(registry)

    async def token(self, request: Any) -> Response:
        try:
            form = read_form(request)
        except HttpError as exc:
            raise _oauth_error(400, "invalid_request", exc.message)
        grant = form.get("grant_type", "")
        client = await client_auth.authenticate_client(self.registry, request, form)
        try:
            if grant == "password":
                body = await self.oauth.password_grant(form.get("username", ""), form.get("password", ""),
                                                       form.get("totp", ""), form.get("scope", ""),
                                                       client.client_id, request.client_ip)
            elif grant == "refresh_token":
                body = await self.oauth.refresh_grant(form.get("refresh_token", ""), client)
            elif grant == "authorization_code":
                body = await self.oauth.code_grant(form.get("code", ""), form.get("code_verifier", ""),
                                                   form.get("redirect_uri", ""), client.client_id)
            elif not grant:
                raise _oauth_error(400, "invalid_request", "grant_type is required")
            else:
                raise _oauth_error(400, "unsupported_grant_type", f"grant_type {grant[:40]!r} is not supported")
        except OAuthError as exc:
            raise http_error(exc)
        return json_response(body, headers={"Pragma": "no-cache"})

    async def revoke(self, request: Any) -> Response:
        """RFC 7009: revoking a refresh token, or an access token, ends its whole family (the
        session) on every node within seconds. 200 even for unknown tokens; a confidential client
        authenticates as at the token endpoint."""
        form = read_form(request)
        client = await client_auth.authenticate_client(self.registry, request, form)
        token = form.get("token", "")
        revoked = False
        try:
            if token and len(token) <= 200:
                revoked = await self.oauth.revoke_refresh_token(token, client)
            elif token and len(token) <= 4096:
                revoked = await self.oauth.revoke_access_token(token)
        except OAuthError as exc:
            raise http_error(exc)
        if revoked:
            await self.registry.revocations.changed()
        return json_response({})


def base_url(registry: Registry, request: Any) -> str:
    """Where tau's own endpoints are: ``[tau] public_url`` (``https://HOSTNAME`` when unset), as the
    issuer and every other link tau makes, never the request's Host header (which a client picks)."""
    return registry.public_url


def register(registry: Registry, http: Any) -> None:
    from tau.http import consent

    oauth = OAuthEndpoints(registry)

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
    consent.register(registry, http, oauth.oauth)
