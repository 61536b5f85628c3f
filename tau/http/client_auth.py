"""Client authentication at ``/oauth2/token`` (RFC 6749 §2.3.1): ``client_secret_basic`` and
``client_secret_post`` for confidential clients; public clients send only ``client_id``.

A registered confidential client must authenticate on every grant, or its stolen codes and refresh
tokens would work without its secret. Failures are 401 ``invalid_client`` with
``WWW-Authenticate: Basic`` (RFC 6749 §5.2). The comparison is between keyed hashes, in constant
time.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from tau.auth import oauth_clients
from tau.auth.oauth import ClientIdentity
from tau.http.errors import HttpError

if TYPE_CHECKING:
    from tau.registry import Registry

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
__all__ = ["AUTH_METHODS", "ClientIdentity", "authenticate_client"]


def _error(status: int, code: str, message: str) -> HttpError:
    headers = {"WWW-Authenticate": 'Basic realm="tau"'} if status == 401 else None
    return HttpError(status, code, message, headers=headers, extra={"error_description": message})


def _basic(request: Any) -> tuple[str, str] | None:
    header = (request.getHeader(b"authorization") or b"").decode("latin-1").strip()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _error(401, "invalid_client", "malformed Basic client credentials")
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise _error(401, "invalid_client", "malformed Basic client credentials")
    return unquote_plus(client_id), unquote_plus(secret)


def _presented(request: Any, form: dict[str, str]) -> tuple[str, str | None]:
    basic = _basic(request)
    form_id, form_secret = form.get("client_id", ""), form.get("client_secret")
    if basic is None:
        return form_id, form_secret or None
    if form_secret is not None:
        raise _error(400, "invalid_request", "use one client authentication method, not two")
    if form_id and form_id != basic[0]:
        raise _error(400, "invalid_request", "client_id differs from the Basic credentials")
    return basic[0], basic[1] or None


async def authenticate_client(registry: Registry, request: Any, form: dict[str, str]) -> ClientIdentity:
    """Who the token request speaks for; raises 401 invalid_client for a missing or wrong secret."""
    client_id, secret = _presented(request, form)
    if len(client_id) > 200 or (secret is not None and len(secret) > 200):
        raise _error(400, "invalid_request", "client_id or client_secret is too long")
    if not client_id:
        if secret is not None:
            raise _error(401, "invalid_client", "a client secret without a client_id")
        return ClientIdentity("", False)
    _, stored = await registry.db.run("oauth_client_secret", oauth_clients.get_secret_hash, client_id, readonly=True)
    if stored is None:
        if secret is not None:
            raise _error(401, "invalid_client", "this client is not confidential and has no secret")
        return ClientIdentity(client_id, False)
    if secret is None:
        raise _error(401, "invalid_client", "client authentication is required for this client")
    if not oauth_clients.secret_matches(stored, registry.keys.mac(oauth_clients.MAC_LABEL, secret)):
        raise _error(401, "invalid_client", "client authentication failed")
    return ClientIdentity(client_id, True)
