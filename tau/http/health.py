"""``GET /api/health``: database and blob store probed for real; 503 names the failing part."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from tau.http.errors import now_rfc3339
from tau.http.router import Response, json_response
from tau.storage.database import ping

if TYPE_CHECKING:
    from tau.registry import Registry

PROBE_TIMEOUT = 3.0
SUITE = ("mail", "calendar", "files", "messenger", "connect")


async def _probe(registry: Registry, fn: Any) -> str | None:
    try:
        d = defer.maybeDeferred(fn)
        d.addTimeout(PROBE_TIMEOUT, registry.reactor)
        value = await d
        if isinstance(value, str) and value.startswith("degraded"):
            return value  # still serving (e.g. the Redis bus is down): shown, not a 503
    except defer.TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:.0f} s"
    except Exception as exc:
        return (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1][:300]
    return None


async def health(registry: Registry, request: Any) -> Response:
    checks = {
        "database": lambda: registry.db.run("health", ping, readonly=True),
        "blob_store": lambda: registry.blobs.check(),
    }
    checks.update(registry.health_checks)
    results = {}
    for name, fn in checks.items():
        results[name] = await _probe(registry, fn)
    services: dict[str, str] = {name: registry.services.get(name, "disabled") for name in SUITE}
    # "mail" is the suite-level name for the SMTP and IMAP services together
    mail_parts = [registry.services[p] for p in ("smtp", "imap") if p in registry.services]
    if mail_parts:
        services["mail"] = "ok" if all(v == "ok" for v in mail_parts) else "degraded"
    services.update({name: registry.services[name] for name in registry.services if name not in services})
    services.update({name: "ok" if problem is None else "unavailable" for name, problem in results.items()})
    degraded = {name: problem for name, problem in results.items() if problem and problem.startswith("degraded")}
    services.update({name: "degraded" for name in degraded})
    failing = {name: problem for name, problem in results.items() if problem is not None and name not in degraded}
    if failing:
        message = "; ".join(f"{name}: {problem}" for name, problem in failing.items())
        return json_response({"status": "unavailable", "error": "unavailable", "message": message,
                              "failing": sorted(failing), "services": services, "timestamp": now_rfc3339(),
                              "request_id": request.request_id}, status=503)
    if degraded:
        return json_response({"status": "degraded", "services": services, "degraded": degraded})
    return json_response({"status": "ok", "services": services})
