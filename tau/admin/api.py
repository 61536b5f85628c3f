"""``/api/admin/*``: users, domains, aliases, quotas, the queue, health and security events, for admins.

Every route is Bearer-authenticated by the router and then checked for ``users.is_admin``
(403 ``forbidden`` JSON otherwise), so a token of an ordinary user learns nothing, not even
which accounts exist. The account rules (normalisation, conflicts) are the CLI's, from
``tau.auth.accounts``; AccountError codes become 4xx JSON errors unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from tau.admin import audit, invites, usage_store
from tau.admin.args import limit_arg
from tau.admin.domains_api import domain_routes
from tau.admin.users_api import user_routes
from tau.auth import accounts, passwords, totp
from tau.auth.accounts import AccountError
from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object
from tau.mail.store import queue
from tau.mail.store.queue import QueueBusy

if TYPE_CHECKING:
    from tau.registry import Registry

_STATUS = {"user_not_found": 404, "domain_not_found": 404, "alias_not_found": 404, "user_exists": 409,
           "domain_exists": 409, "alias_exists": 409, "domain_in_use": 409, "app_password_not_found": 404,
           "cannot_change_self": 409}


def require_admin(request: Any) -> Any:
    user = getattr(request, "user", None)
    if user is None or not user.is_admin:
        raise HttpError(403, "forbidden", "administrators only")
    return user


def _account_error(exc: AccountError) -> HttpError:
    return HttpError(_STATUS.get(exc.code, 400), exc.code, exc.message)


def _queue_counts(txn: Any) -> dict[str, int]:
    return queue.counts(txn)


def _users_and_totp(txn: Any, domain: str | None) -> tuple[list[accounts.User], set[int]]:
    return accounts.list_users(txn, domain), totp.enabled_user_ids(txn)


def _update_user(txn: Any, address: str, body: dict[str, Any], password_hash: str | None, actor: str) -> Any:
    user = accounts.require_user(txn, address)
    for flag in ("disabled", "admin"):
        if flag in body and not isinstance(body[flag], bool):  # "false" is truthy: refuse, never guess
            raise AccountError("invalid_request", f"{flag} must be true or false")
    if user.address == actor and (body.get("disabled") is True or body.get("admin") is False):
        # the last way back in would be the command line: an admin cannot lock themselves out here
        raise AccountError("cannot_change_self", "an administrator cannot disable or demote their own account")
    if "disabled" in body:
        accounts.set_disabled(txn, user.address, bool(body["disabled"]))
    if "admin" in body:
        accounts.set_profile(txn, user.id, is_admin=bool(body["admin"]))
    if "quota_bytes" in body:
        quota = body["quota_bytes"]
        if quota is not None and (not isinstance(quota, int) or quota < 0):
            raise AccountError("invalid_quota", "quota_bytes must be a non-negative integer or null")
        accounts.set_profile(txn, user.id, quota_bytes=quota)
    if "display_name" in body:
        accounts.set_profile(txn, user.id, display_name=str(body["display_name"])[:200])
    if password_hash:
        accounts.set_password(txn, user.address, password_hash)
    return accounts.require_user(txn, user.address)


Run = Callable[..., Awaitable[Any]]
Routes = list[tuple[str, str, Callable[..., Awaitable[Response]]]]


def _runner(db: Any) -> Run:
    """``db.run`` with the account and queue errors as their 4xx JSON answers."""
    async def run(name: str, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return await db.run(name, fn, *args, **kw)
        except AccountError as exc:
            raise _account_error(exc)
        except QueueBusy as exc:
            raise HttpError(409, "queue_busy", str(exc))
    return run


def _on_change(registry: Registry) -> Callable[[], Awaitable[None]]:
    async def changed() -> None:
        """A password, the disabled flag or an account changed: caches forget, sessions the
        transaction revoked are refused here at once and on other nodes within seconds."""
        registry.authenticator.forget()
        registry.users.invalidate()
        await registry.revocations.changed()
    return changed


async def _checked_hash(registry: Registry, password: str) -> str:
    """The hash of a password strong enough (400 ``weak_password`` otherwise)."""
    try:
        passwords.check_strength(password)
    except passwords.WeakPassword as exc:
        raise HttpError(400, "weak_password", str(exc))
    return str(await registry.run_password_hash(passwords.hash_password, password))


def _user_routes(registry: Registry, run: Run) -> Routes:
    changed = _on_change(registry)

    async def list_users(request: Any) -> Response:
        require_admin(request)
        users, with_totp = await run("admin_users", _users_and_totp, query_arg(request, "domain"), readonly=True)
        return json_response({"items": [{**u.public(), "totp": u.id in with_totp, "invited": u.password_hash is None
                                         and u.source == "local"} for u in users], "next_cursor": None})

    async def add_user(request: Any) -> Response:
        """With ``password``, or ``"invite": true`` for an account whose owner sets it by a link."""
        require_admin(request)
        body = await read_json_object(request)
        password, invite = body.get("password"), body.get("invite") is True
        if invite == isinstance(password, str):
            raise HttpError(400, "invalid_request", "give either a password or \"invite\": true")
        hashed = None if invite else await _checked_hash(registry, password)
        quota = body.get("quota_bytes")
        user = await run("admin_add_user", accounts.add_user, str(body.get("address", "")), hashed,
                         display_name=str(body.get("display_name", ""))[:200], is_admin=bool(body.get("admin")),
                         quota_bytes=quota if isinstance(quota, int) and quota >= 0 else None)
        extra = invites.link(registry, user) if invite else {}
        return json_response({**user.public(), **extra}, 201, headers={"Cache-Control": "no-store"})

    async def patch_user(request: Any, address: str) -> Response:
        require_admin(request)
        body = await read_json_object(request)
        hashed = None
        if isinstance(body.get("password"), str):
            hashed = await _checked_hash(registry, body["password"])
        user = await run("admin_patch_user", _update_user, address, body, hashed, request.user.address)
        await changed()
        return json_response(user.public())

    async def delete_user(request: Any, address: str) -> Response:
        admin = require_admin(request)
        if accounts.normalize_address(address) == admin.address:
            raise HttpError(409, "cannot_delete_self", "an administrator cannot delete their own account")
        await run("admin_delete_user", accounts.delete_user, address)
        await changed()
        return Response(b"", 204, "text/plain")

    return [("GET", "/api/admin/users", list_users), ("POST", "/api/admin/users", add_user),
            ("PATCH", "/api/admin/users/{address}", patch_user), ("DELETE", "/api/admin/users/{address}", delete_user),
            *user_routes(registry, run, require_admin, changed)]


def _domain_routes(registry: Registry, run: Run) -> Routes:
    """Domains, aliases and the quota report."""
    async def list_domains(request: Any) -> Response:
        require_admin(request)
        return json_response({"items": await run("admin_domains", accounts.list_domains, readonly=True),
                              "next_cursor": None})

    async def add_domain(request: Any) -> Response:
        require_admin(request)
        body = await read_json_object(request)
        name = await run("admin_add_domain", accounts.add_domain, str(body.get("name", "")))
        return json_response({"name": name}, 201)

    async def delete_domain(request: Any, name: str) -> Response:
        require_admin(request)
        await run("admin_delete_domain", accounts.delete_domain, name)
        return Response(b"", 204, "text/plain")

    async def list_aliases(request: Any) -> Response:
        require_admin(request)
        items = await run("admin_aliases", accounts.list_aliases, query_arg(request, "domain"), readonly=True)
        return json_response({"items": items, "next_cursor": None})

    async def add_alias(request: Any) -> Response:
        require_admin(request)
        body = await read_json_object(request)
        await run("admin_add_alias", accounts.add_alias, str(body.get("address", "")), str(body.get("destination", "")))
        return json_response({"address": body.get("address"), "destination": body.get("destination")}, 201)

    async def delete_alias(request: Any, address: str) -> Response:
        require_admin(request)
        await run("admin_delete_alias", accounts.delete_alias, address, query_arg(request, "destination"))
        return Response(b"", 204, "text/plain")

    async def quotas(request: Any) -> Response:
        require_admin(request)
        items = await run("admin_quotas", usage_store.quota_report, registry.config.limits.quota_bytes,
                          readonly=True)
        return json_response({"items": items, "next_cursor": None})

    return [("GET", "/api/admin/domains", list_domains), ("POST", "/api/admin/domains", add_domain),
            ("DELETE", "/api/admin/domains/{name}", delete_domain),
            ("GET", "/api/admin/aliases", list_aliases), ("POST", "/api/admin/aliases", add_alias),
            ("DELETE", "/api/admin/aliases/{address}", delete_alias),
            ("GET", "/api/admin/quotas", quotas),
            *domain_routes(registry, run, require_admin)]


def _queue_routes(registry: Registry, run: Run) -> Routes:
    from tau.admin.queue_api import queue_routes

    return queue_routes(registry, run, require_admin)


def _health_routes(registry: Registry, run: Run) -> Routes:
    async def health(request: Any) -> Response:
        require_admin(request)
        from tau.http.health import body as health_body
        from tau.http.health import probe

        report = await probe(registry)
        body, status = health_body(report, request)
        body["reasons"] = {**report.failing, **report.degraded}  # part -> why, for the page's table
        body["queue"] = await run("admin_queue_counts", _queue_counts, readonly=True)
        directory = registry.authenticator.directory
        body["ldap"] = None if directory is None else {"url": directory.url, "last_error": directory.last_error}
        body["uptime_seconds"] = int(registry.clock.seconds() - registry.started_at)
        return json_response(body, status)

    async def security_events(request: Any) -> Response:
        """Recent failed and throttled logins and admin actions on this node, newest first."""
        require_admin(request)
        limit = limit_arg(request, 500)
        items = registry.throttle.events.recent(limit, query_arg(request, "kind") or None)
        return json_response({"items": items, "next_cursor": None})

    return [("GET", "/api/admin/health", health), ("GET", "/api/admin/security-events", security_events)]


def register(registry: Registry, http: Any) -> None:
    run = _runner(registry.db)
    for group in (_user_routes, _domain_routes, _queue_routes, _health_routes):
        for method, path, handler in group(registry, run):
            audit.route(registry, http, method, path, handler)  # the admin role as well (tau.auth.scopes)
