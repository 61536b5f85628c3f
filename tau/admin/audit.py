"""Every state-changing admin request leaves an audit line: who, what, on which path, and how it ended.

``admin_audit actor=... action=POST path=/api/admin/users status=201`` goes to the log (the durable
record, one line per request, greppable like Postfix's), and the same event to the recent security
events the admin page lists (tau.auth.security_events). Refused attempts are audited too: a 403 of
a non-admin trying to create an account is exactly what an operator wants to see. Bodies are never
logged (they carry passwords).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.http.errors import HttpError
from tau.http.router import Response, route_path

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
Handler = Callable[..., Awaitable[Response]]


def _path(request: Any) -> str:
    try:
        return route_path(request.path)[:300]
    except ValueError:
        return "?"


def audited(registry: Registry, method: str, handler: Handler) -> Handler:
    """``handler`` with an audit line after it ran (GET and HEAD change nothing: unchanged)."""
    if method in ("GET", "HEAD"):
        return handler

    def record(request: Any, status: int) -> None:
        user = getattr(request, "user", None)
        actor = user.address if user is not None else None
        path = _path(request)
        log.info("admin_audit actor={actor} action={action} path={path} status={status} ip={ip}",
                 actor=actor, action=method, path=path, status=status, ip=request.client_ip)
        registry.throttle.events.record("admin_action", actor=actor, action=method, path=path, status=status,
                                        ip=request.client_ip)

    async def wrapper(request: Any, **params: str) -> Response:
        try:
            response = await handler(request, **params)
        except HttpError as exc:
            record(request, exc.status)
            raise
        record(request, response.status)
        return response
    return wrapper


def route(registry: Registry, http: Any, method: str, path: str, handler: Handler) -> None:
    """An admin route: the ``admin`` scope (tau.auth.scopes) and the audit line."""
    http.route(method, path, audited(registry, method, handler), scope="admin")
