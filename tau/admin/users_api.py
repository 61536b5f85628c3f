"""``/api/admin/users/{address}/...``: what an admin does to one account beyond its profile.

``GET .../{address}`` the account with its 2FA state, app passwords and storage use;
``POST .../invite`` a fresh invite link for an account that has no password yet (tau.admin.invites);
``DELETE .../2fa`` resets two-factor authentication (the user lost the phone: their sessions end,
the password alone works again); ``GET .../app-passwords`` lists them (never the passwords) and
``DELETE .../app-passwords/{id}`` revokes one, effective at the next login (they are never cached).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tau.admin import invites, usage_store
from tau.auth import accounts, totp
from tau.http.errors import HttpError
from tau.http.router import Response, json_response

if TYPE_CHECKING:
    from tau.registry import Registry

Run = Callable[..., Awaitable[Any]]
Routes = list[tuple[str, str, Callable[..., Awaitable[Response]]]]


def _detail(txn: Any, address: str, default_quota: int) -> dict[str, Any]:
    user = accounts.require_user(txn, address)
    usage = usage_store.user_usage(txn, user.id)
    return {**user.public(), "totp": totp.is_enabled(txn, user.id), "has_password": user.password_hash is not None,
            "app_passwords": accounts.list_app_passwords(txn, user.address),
            "effective_quota_bytes": default_quota if user.quota_bytes is None else user.quota_bytes, **usage}


def _reset_totp(txn: Any, address: str) -> bool:
    accounts.require_user(txn, address)
    return totp.disable(txn, address)


def _app_id(text: str) -> int:
    if not text.isdigit():
        raise HttpError(404, "app_password_not_found", "no such app password")
    return int(text)


def user_routes(registry: Registry, run: Run, require_admin: Callable[[Any], Any],
                changed: Callable[[], Awaitable[None]]) -> Routes:
    async def detail(request: Any, address: str) -> Response:
        require_admin(request)
        return json_response(await run("admin_user", _detail, address, registry.config.limits.quota_bytes,
                                       readonly=True))

    async def invite(request: Any, address: str) -> Response:
        require_admin(request)
        user = await run("admin_user_invite", accounts.require_user, address, readonly=True)
        if user.password_hash is not None or user.source != "local":
            raise HttpError(409, "has_password", "this account has a password already; invites are for new ones")
        return json_response({"address": user.address, **invites.link(registry, user)},
                             headers={"Cache-Control": "no-store"})

    async def reset_totp(request: Any, address: str) -> Response:
        require_admin(request)
        was = await run("admin_user_2fa_reset", _reset_totp, address)
        await changed()
        return json_response({"enabled": False, "was_enabled": was})

    async def app_passwords(request: Any, address: str) -> Response:
        require_admin(request)
        items = await run("admin_app_passwords", accounts.list_app_passwords, address, readonly=True)
        return json_response({"items": items, "next_cursor": None})

    async def revoke_app_password(request: Any, address: str, app_id: str) -> Response:
        require_admin(request)
        await run("admin_app_password_revoke", accounts.revoke_app_password, address, _app_id(app_id))
        return Response(b"", 204, "text/plain")

    base = "/api/admin/users/{address}"
    return [("GET", base, detail), ("POST", base + "/invite", invite), ("DELETE", base + "/2fa", reset_totp),
            ("GET", base + "/app-passwords", app_passwords),
            ("DELETE", base + "/app-passwords/{app_id}", revoke_app_password)]
