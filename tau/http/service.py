"""The HTTP core service: one Site on ``[listen] http``/``https`` that every HTTP service mounts on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.auth import scopes
from tau.http.errors import HttpError
from tau.http.health import health
from tau.http.metrics_access import MetricsAccess
from tau.http.router import Response, Router, json_response
from tau.http.site import TauSite

if TYPE_CHECKING:
    from tau.registry import Registry


class HttpHost:
    """What ``host.http`` offers other services: routes, mounts, body limits."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.router = Router(registry)
        self.site = TauSite(self.router, registry)
        self.site.on_finish.append(self._observe)

    def route(self, method: str, pattern: str, handler: Any, auth: str = "bearer", scope: str | None = None) -> None:
        """``scope``: what the caller's token must carry (tau.auth.scopes); required unless auth="none"."""
        self.router.route(method, pattern, handler, auth, scope)

    def accept_session_cookie(self, prefix: str) -> None:
        """Let Bearer routes under ``prefix`` also accept the browser session cookie."""
        self.router.accept_session_cookie(prefix)

    def mount(self, prefix: str, resource: Any, auth: str = "none", body_limit: int | None = -1,
              scope: str | None = None) -> None:
        """``body_limit=None`` lets the resource stream bodies of any size itself."""
        self.router.mount(prefix, resource, auth, scope)
        if body_limit != -1:
            self.site.set_body_limit(prefix, body_limit)

    def _observe(self, request: Any, elapsed: float) -> None:
        metrics = self.registry.metrics
        method = request.method.decode("latin-1", "replace")[:10]
        route = getattr(request, "route", "-")
        metrics.http_requests.labels(method, route, str(request.code)).inc()
        metrics.http_latency.labels(method, route).observe(elapsed)


def install(registry: Registry, host: Any) -> None:
    http = HttpHost(registry)
    host.http = http

    async def get_health(request: Any) -> Response:
        return await health(registry, request)

    access = MetricsAccess(registry.config.metrics.allow)

    async def get_metrics(request: Any) -> Response:
        if not access.allows(request.client_ip):
            raise HttpError(403, "forbidden", "metrics are not served to this address ([metrics] allow)")
        await registry.metrics.refresh()
        return Response(registry.metrics.exposition(), 200, registry.metrics.content_type)

    async def get_me(request: Any) -> Response:
        return json_response(request.user.public())

    http.route("GET", "/api/health", get_health, auth="none")
    http.route("GET", "/metrics", get_metrics, auth="none")
    # any valid token: it only says whom the token is for (what the JWT's sub says anyway)
    http.route("GET", "/api/me", get_me, scope=scopes.ANY)

    from tau.http import oauth

    oauth.register(registry, http)
    from tau.http import session

    session.register(registry, http)
    for key in ("http", "https"):
        host.add_listener(key, http.site)
    if hasattr(host, "on_drain"):  # test stand-ins for the host may not have it
        host.on_drain(http.site.drain)
    registry.services["http"] = "ok"
