"""``/api/account/2fa``: a user turns TOTP two-factor on and off for themselves (tau.auth.totp).

``POST {"action": "setup"}`` returns a pending secret (otpauth:// URI) and recovery codes;
``{"action": "confirm", "code"}`` proves the authenticator app has it and switches 2FA on;
``{"action": "disable", "code"}`` needs a current code or a recovery code. ``GET`` → status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.auth import revocation_store, totp
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry


def _setup(txn: Any, keys: Any, address: str, user_id: int) -> tuple[str, list[str]]:
    if totp.is_enabled(txn, user_id):
        raise HttpError(409, "totp_enabled", "two-factor authentication is on; disable it first")
    return totp.begin(txn, keys, address, enable=False)


def _disable(txn: Any, keys: Any, address: str, user_id: int, code: str, session: str | None) -> bool:
    if not totp.verify(txn, keys, user_id, code):
        return False
    totp.disable(txn, address, keep_session=session)
    return True


def _confirm(txn: Any, keys: Any, user_id: int, code: str, session: str | None) -> bool:
    """Switch 2FA on; the user's other sessions end (they were opened without the second factor)."""
    if not totp.verify(txn, keys, user_id, code, None, True):
        return False
    revocation_store.revoke_user(txn, user_id, keep=session)
    return True


def register(registry: Registry, http: Any) -> None:
    db, keys = registry.db, registry.keys

    async def status(request: Any) -> Response:
        enabled = await db.run("totp_enabled", totp.is_enabled, request.user.id, readonly=True)
        return json_response({"enabled": bool(enabled)})

    async def change(request: Any) -> Response:
        body = await read_json_object(request)
        user, action, code = request.user, body.get("action"), str(body.get("code") or "")
        session = getattr(request, "token_session", None)  # the asking session stays signed in
        if action == "setup":
            uri, codes = await db.run("totp_setup", _setup, keys, user.address, user.id)
            return json_response({"enabled": False, "otpauth_uri": uri, "recovery_codes": codes})
        if action == "confirm":
            if not await db.run("totp_confirm", _confirm, keys, user.id, code, session):
                raise HttpError(400, "invalid_totp", "the code does not match the new secret")
            await registry.revocations.changed()
            return json_response({"enabled": True})
        if action == "disable":
            if not await db.run("totp_disable", _disable, keys, user.address, user.id, code, session):
                raise HttpError(400, "invalid_totp", "a current code or a recovery code is required")
            await registry.revocations.changed()
            return json_response({"enabled": False})
        raise HttpError(400, "invalid_action", "action must be setup, confirm or disable")

    http.route("GET", "/api/account/2fa", status, scope="account")
    http.route("POST", "/api/account/2fa", change, scope="account")
