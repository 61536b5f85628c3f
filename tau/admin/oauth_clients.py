"""``/api/admin/oauth/clients``: the CLI's ``tau oauth client add|list|remove`` for admins over HTTP.

``POST`` takes ``{"name", "redirect_uris": [...], "confidential"?, "native"?}`` and answers 201 with
the client, plus ``client_secret`` once for a confidential client (stored only as a keyed hash).
Admin-only like every ``/api/admin`` route (403 ``forbidden`` otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.admin.api import require_admin
from tau.admin.audit import route
from tau.auth import oauth_clients
from tau.auth.oauth_clients import ClientError
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

_STATUS = {"client_not_found": 404, "client_exists": 409}


def _parse_body(body: dict[str, Any]) -> oauth_clients.Registration:
    uris = body.get("redirect_uris", [])
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise ClientError("invalid_redirect_uri", "redirect_uris must be a list of strings")
    for flag in ("confidential", "native"):
        if not isinstance(body.get(flag, False), bool):
            raise ClientError("invalid_client_metadata", f"{flag} must be true or false")
    return oauth_clients.validate(str(body.get("name", "")), uris, body.get("confidential", False),
                                  body.get("native", False))


def register(registry: Registry, http: Any) -> None:
    db = registry.db

    async def run(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return await db.run(name, fn, *args, **kw)
        except ClientError as exc:
            raise HttpError(_STATUS.get(exc.code, 400), exc.code, exc.message)

    async def list_clients(request: Any) -> Response:
        require_admin(request)
        clients = await run("admin_oauth_clients", oauth_clients.list_clients, readonly=True)
        return json_response({"items": [c.public() for c in clients], "next_cursor": None})

    async def add_client(request: Any) -> Response:
        require_admin(request)
        try:
            reg = _parse_body(await read_json_object(request))
        except ClientError as exc:
            raise HttpError(400, exc.code, exc.message)
        secret = oauth_clients.new_secret() if reg.confidential else None
        secret_hash = registry.keys.mac(oauth_clients.MAC_LABEL, secret) if secret else None
        client = await run("admin_oauth_client_add", oauth_clients.add_client, oauth_clients.new_client_id(),
                           reg, secret_hash)
        body = client.public()
        if secret:
            body["client_secret"] = secret
        return json_response(body, 201, headers={"Cache-Control": "no-store"})

    async def remove_client(request: Any, client_id: str) -> Response:
        require_admin(request)
        await run("admin_oauth_client_remove", oauth_clients.remove_client, client_id)
        return Response(b"", 204, "text/plain")

    route(registry, http, "GET", "/api/admin/oauth/clients", list_clients)
    route(registry, http, "POST", "/api/admin/oauth/clients", add_client)
    route(registry, http, "DELETE", "/api/admin/oauth/clients/{client_id}", remove_client)
