"""``/oauth2/authorize``: a minimal server-rendered login + consent page (RFC 6749 §4.1, PKCE S256).

Redirect URIs must be registered for the client and match exactly, except loopback ones, which
native public apps (unregistered client ids, or registered with ``native``) may use with any port
(RFC 8252 §7.3); every one must pass the strict canonical parse of ``tau.auth.redirects``.
A bad client or redirect URI is shown as an error page and never redirected to (no open
redirector). The form carries a signed, time-limited token binding the request parameters, so it
cannot be replayed with other parameters or forged cross-site.
"""

from __future__ import annotations

import hmac
import secrets
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from tau.auth import oauth_clients, oauth_store, redirects, scopes, totp
from tau.auth.authenticator import LoginFailed, LoginThrottled
from tau.http.errors import HttpError
from tau.http.router import Response, query_arg, read_form

if TYPE_CHECKING:
    from tau.registry import Registry

FORM_TTL = 600
PARAMS = ("response_type", "client_id", "redirect_uri", "code_challenge", "code_challenge_method", "state", "scope")
#: tau.http.pageheaders' strict policy; the one inline <style> of ``_page`` is allowed by its hash
#: (change the hash with the style: tests/http/test_page_headers.py checks they match)
PAGE_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "default-src 'none'; script-src 'self'; "
                "style-src 'sha256-Hq/zdrjkrG4DilEEOe1rZuVgWyUK1XTe5iVLAZ2ZvoU='; img-src 'self'; connect-src 'self'; "
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'", "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def is_loopback_redirect(uri: str) -> bool:
    """A canonical ``http://127.0.0.1:PORT/...`` or ``http://[::1]:PORT/...`` (see tau.auth.redirects)."""
    return redirects.is_loopback(uri)


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
            "<meta name=viewport content='width=device-width'>"
            "<style>body{font:16px system-ui;max-width:26em;margin:4em auto;padding:0 1em}"
            "input{display:block;width:100%;margin:.3em 0 1em;padding:.4em}button{padding:.5em 1.2em}</style>"
            f"</head><body><h1>{escape(title)}</h1>{body}</body></html>")
    return Response(html.encode(), status, "text/html; charset=utf-8", dict(PAGE_HEADERS))


def _scope_list(requested: str) -> str:
    """Each scope the application asks for, in words (tau.auth.scopes); identity only when it
    names none it can get (what the code grant then issues)."""
    described = scopes.describe(requested) or scopes.describe(" ".join(scopes.IDENTITY))
    items = "".join(f"<li><b>{escape(name)}</b>: {escape(text)}</li>" for name, text in described)
    return f"<p>It will be able to:</p><ul class=scopes>{items}</ul>"


def _redirect(uri: str, params: dict[str, str]) -> Response:
    sep = "&" if urlsplit(uri).query else "?"
    return Response(b"", 302, "text/plain", {"Location": uri + sep + urlencode(params)})


class Consent:
    def __init__(self, registry: Registry, oauth: Any) -> None:
        self.registry = registry
        self.oauth = oauth

    def _sign(self, params: dict[str, str], issued: int) -> str:
        canonical = "\n".join(f"{k}={params.get(k, '')}" for k in PARAMS) + f"\n{issued}"
        return f"{issued}.{self.registry.keys.mac('consent-form', canonical)}"

    def _verify(self, params: dict[str, str], token: str) -> bool:
        issued_text, _, _mac = token.partition(".")
        if not issued_text.isdigit() or self.registry.clock.seconds() - int(issued_text) > FORM_TTL:
            return False
        return hmac.compare_digest(self._sign(params, int(issued_text)), token)

    async def _validate(self, params: dict[str, str]) -> Response | None:
        """An error page for a bad client/redirect; an error redirect for other bad parameters."""
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if not client_id or len(client_id) > 200:
            return _page("Cannot sign in", "<p>The application did not identify itself (client_id).</p>", 400)
        client = await self.registry.db.run("oauth_client_get", oauth_clients.get_client, client_id, readonly=True)
        # an unregistered client id is a native public client (loopback redirects only), if allowed
        unregistered = self.registry.config.auth.unregistered_oauth_clients
        registered, loopback = (client.redirect_uris, client.loopback_any_port) if client else ((), unregistered)
        if not redirects.allowed(redirect_uri, registered, loopback):
            return _page("Cannot sign in", "<p>The application's redirect address is not registered.</p>", 400)
        error = None
        if params.get("response_type") != "code":
            error = ("unsupported_response_type", "only response_type=code is supported")
        elif not params.get("code_challenge"):
            error = ("invalid_request", "PKCE code_challenge is required")
        elif params.get("code_challenge_method") != "S256":
            error = ("invalid_request", "code_challenge_method must be S256")
        elif not 43 <= len(params["code_challenge"]) <= 128:
            error = ("invalid_request", "code_challenge has the wrong length")
        if error:
            out = {"error": error[0], "error_description": error[1]}
            if params.get("state"):
                out["state"] = params["state"]
            return _redirect(redirect_uri, out)
        return None

    def _form(self, params: dict[str, str], message: str = "", status: int = 200) -> Response:
        hidden = "".join(f"<input type=hidden name={k} value='{escape(params.get(k, ''), quote=True)}'>"
                         for k in PARAMS)
        token = self._sign(params, int(self.registry.clock.seconds()))
        note = f"<p role=alert><strong>{escape(message)}</strong></p>" if message else ""
        body = (f"<p><b>{escape(params.get('client_id', ''))}</b> asks to use your tau account.</p>"
                f"{_scope_list(params.get('scope', ''))}{note}"
                f"<form method=post action='/oauth2/authorize'>{hidden}"
                f"<input type=hidden name=form_token value='{escape(token, quote=True)}'>"
                "<label>Address<input name=username type=email autocomplete=username required></label>"
                "<label>Password<input name=password type=password autocomplete=current-password required></label>"
                "<label>One-time code (if two-factor is on)<input name=totp autocomplete=one-time-code></label>"
                "<button name=decision value=allow>Allow</button> <button name=decision value=deny formnovalidate>"
                "Deny</button></form>")
        return _page("Sign in to tau", body, status)

    async def show(self, request: Any) -> Response:
        params = {k: query_arg(request, k, "") or "" for k in PARAMS}
        problem = await self._validate(params)
        return problem or self._form(params)

    async def submit(self, request: Any) -> Response:
        form = read_form(request)
        params = {k: form.get(k, "") for k in PARAMS}
        problem = await self._validate(params)
        if problem:
            return problem
        if not self._verify(params, form.get("form_token", "")):
            return self._form(params, "This form expired; please sign in again.", 400)
        state = {"state": params["state"]} if params.get("state") else {}
        if form.get("decision") != "allow":
            return _redirect(params["redirect_uri"], {"error": "access_denied", **state})
        try:
            user = await self.registry.authenticator.authenticate(form.get("username", ""), form.get("password", ""),
                                                                  request.client_ip, second_factor=True)
            await totp.check_login(self.registry, user, form.get("totp", ""))
        except LoginThrottled as exc:
            return self._form(params, str(exc), 429)
        except LoginFailed:
            return self._form(params, "Wrong address or password.", 401)
        except totp.TwoFactorError as exc:
            return self._form(params, exc.message, 401)
        code = secrets.token_urlsafe(32)
        await self.registry.db.run("oauth_store_code", oauth_store.store_code,
                                   self.registry.keys.mac("auth-code", code), user.id, params["client_id"],
                                   params["redirect_uri"], params["code_challenge"], params.get("scope", ""))
        return _redirect(params["redirect_uri"], {"code": code, **state})


def register(registry: Registry, http: Any, oauth: Any) -> None:
    consent = Consent(registry, oauth)
    http.route("GET", "/oauth2/authorize", consent.show, auth="none")
    http.route("POST", "/oauth2/authorize", consent.submit, auth="none")


__all__ = ["HttpError", "register"]
