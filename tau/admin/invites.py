"""Invite links: an admin creates an account without a password and hands out a link; the invitee
chooses the password on ``/invite#token=...`` (the fragment never reaches a server log).

The token is stateless — ``USER_ID.EXPIRES.MAC`` under the installation secret, the MAC covering
the account's current password hash (none yet) and change time — so no table is needed and a
link dies by itself once a password is set: setting it is a conditional update on "no password
yet" (``accounts.set_initial_password``), so of two concurrent uses exactly one wins.
``POST /api/invite {"token"}`` says whom a valid link is for; ``{"token", "password"}`` uses it.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.auth import accounts, passwords
from tau.auth.accounts import User
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_json_object

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
TTL = 7 * 86400
MAC_LABEL = "invite"
INVALID = HttpError(400, "invalid_invite", "this invite link is not valid (used, expired or revoked)")


def _mac(keys: Any, user: User, expires: int) -> str:
    return str(keys.mac(MAC_LABEL, f"{user.id}\0{expires}\0{user.password_hash or ''}\0{user.password_changed_at}"))


def mint(keys: Any, user: User, now: float) -> str:
    expires = int(now) + TTL
    return f"{user.id}.{expires}.{_mac(keys, user, expires)}"


def link(registry: Registry, user: User) -> dict[str, Any]:
    token = mint(registry.keys, user, registry.clock.seconds())
    return {"invite_url": f"{registry.public_url}/invite#token={token}", "invite_expires_in": TTL}


def _parse(token: Any) -> tuple[int, int, str]:
    parts = token.split(".") if isinstance(token, str) and len(token) < 200 else []
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise INVALID
    return int(parts[0]), int(parts[1]), parts[2]


def _invited(txn: Any, keys: Any, token: Any, now: float) -> User:
    """The account a token invites, if it is still open to this token."""
    user_id, expires, mac = _parse(token)
    user = accounts.get_user_by_id(txn, user_id)
    if (user is None or expires < now or user.disabled or user.password_hash is not None
            or not hmac.compare_digest(mac, _mac(keys, user, expires))):
        raise INVALID
    return user


def _accept(txn: Any, keys: Any, token: str, now: float, password_hash: str) -> User:
    user = _invited(txn, keys, token, now)
    if not accounts.set_initial_password(txn, user.id, password_hash):
        raise INVALID
    return user


def register(registry: Registry, http: Any) -> None:
    db, keys = registry.db, registry.keys

    async def use(request: Any) -> Response:
        body = await read_json_object(request)
        token, password = body.get("token"), body.get("password")
        user = await db.run("invite_check", _invited, keys, token, registry.clock.seconds(), readonly=True)
        if password is None:
            return json_response({"address": user.address})
        if not isinstance(password, str):
            raise HttpError(400, "invalid_request", "password must be a string")
        try:
            passwords.check_strength(password)
        except passwords.WeakPassword as exc:
            raise HttpError(400, "weak_password", str(exc))
        hashed = await registry.run_password_hash(passwords.hash_password, password)
        user = await db.run("invite_accept", _accept, keys, token, registry.clock.seconds(), hashed)
        log.info("invite_accepted account={account} ip={ip}", account=user.address, ip=request.client_ip)
        registry.throttle.events.record("invite_accepted", account=user.address, ip=request.client_ip)
        return json_response({"address": user.address})

    http.route("POST", "/api/invite", use, auth="none")
