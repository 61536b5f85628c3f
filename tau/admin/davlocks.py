"""``/api/admin/dav-locks?user=ADDRESS``: an administrator lists and removes the WebDAV locks in a
user's trees (files and calendars), whoever holds them — the way out when a client (or a share
recipient) left a lock behind. The owner of a tree can remove them herself with UNLOCK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.admin.api import require_admin
from tau.admin.audit import route
from tau.auth import accounts
from tau.dav.lockdb import delete_within_tokens, select_within
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg

if TYPE_CHECKING:
    from tau.registry import Registry

#: DAV mounts with locks, and the lock key of a user's tree in each (see each provider's ``lock_owner``)
TREES = {"/dav/files": lambda address: (address,), "/dav": lambda address: ("calendars", address)}


def _user(request: Any) -> str:
    try:
        return accounts.normalize_address(query_arg(request, "user") or "")
    except accounts.AccountError as exc:
        raise HttpError(400, exc.code, exc.message)


def register(registry: Registry, http: Any) -> None:
    async def listing(request: Any) -> Response:
        require_admin(request)
        address, now = _user(request), registry.reactor.seconds()
        items = []
        for tree, key in TREES.items():
            for lock in await registry.db.run("admin_dav_locks", select_within, tree, key(address), now, readonly=True):
                items.append({"token": lock.token, "href": lock.href, "principal": lock.principal,
                              "exclusive": lock.exclusive, "depth": "infinity" if lock.infinite else "0",
                              "expires_in": max(0, int(lock.expires - now))})
        return json_response({"items": items, "next_cursor": None})

    async def remove(request: Any) -> Response:
        require_admin(request)
        address, token = _user(request), query_arg(request, "token")
        removed = 0
        for tree, key in TREES.items():
            removed += await registry.db.run("admin_dav_unlock", delete_within_tokens, tree, key(address), token)
        if token is not None and not removed:
            raise HttpError(404, "not_found", "no such lock in that user's trees")
        return json_response({"removed": removed})

    route(registry, http, "GET", "/api/admin/dav-locks", listing)
    route(registry, http, "DELETE", "/api/admin/dav-locks", remove)
