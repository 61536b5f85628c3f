"""``GET /api/health``: the required parts (database, blob store) probed for real, then the optional
ones services register (Redis bus, LDAP, SFU, Rspamd).

* every part answers: 200 ``{"status": "ok"}``;
* an optional part fails: 200 ``{"status": "degraded", "degraded": {part: reason}}`` — the node still
  serves mail, files and logins, only that part's feature is missing or slower;
* a required part fails: 503 ``{"status": "error", "error": "unavailable", "failing": [...]}`` with the
  reasons in ``message`` (the error envelope every 5xx uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet import defer

from tau.http.errors import now_rfc3339
from tau.http.router import Response, json_response
from tau.storage.database import ping

if TYPE_CHECKING:
    from tau.registry import Registry

PROBE_TIMEOUT = 3.0
SUITE = ("mail", "calendar", "files", "messenger", "connect")
#: parts without which the node serves nothing: their failure is a 503
REQUIRED = ("database", "blob_store")


@dataclass
class HealthReport:
    """What ``probe`` found: the overall status, each service's state and the reasons."""

    status: str
    services: dict[str, str]
    degraded: dict[str, str] = field(default_factory=dict)
    failing: dict[str, str] = field(default_factory=dict)

    def reasons(self) -> str:
        return "; ".join(f"{name}: {why}" for name, why in {**self.failing, **self.degraded}.items())


async def _probe(registry: Registry, fn: Any) -> str | None:
    """None when the part answers, else why not (one line)."""
    try:
        d = defer.maybeDeferred(fn)
        d.addTimeout(PROBE_TIMEOUT, registry.reactor)
        value = await d
        if isinstance(value, str) and value.startswith("degraded"):
            return value.removeprefix("degraded").lstrip(": ") or "degraded"
    except defer.TimeoutError:
        return f"no answer within {PROBE_TIMEOUT:.0f} s"
    except Exception as exc:
        return (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1][:300]
    return None


async def probe(registry: Registry) -> HealthReport:
    """Probe every part once (``/api/health``, the admin page, the start-up log)."""
    checks: dict[str, Any] = {
        "database": lambda: registry.db.run("health", ping, readonly=True),
        "blob_store": lambda: registry.blobs.check(),
    }
    checks.update(registry.health_checks)
    results = {name: await _probe(registry, fn) for name, fn in checks.items()}
    services: dict[str, str] = {name: registry.services.get(name, "disabled") for name in SUITE}
    # "mail" is the suite-level name for the SMTP and IMAP services together
    mail_parts = [registry.services[p] for p in ("smtp", "imap") if p in registry.services]
    if mail_parts:
        services["mail"] = "ok" if all(v == "ok" for v in mail_parts) else "degraded"
    services.update({name: registry.services[name] for name in registry.services if name not in services})
    failing = {name: why for name, why in results.items() if why is not None and name in REQUIRED}
    degraded = {name: why for name, why in results.items() if why is not None and name not in REQUIRED}
    for name, why in results.items():
        services[name] = "ok" if why is None else "unavailable" if name in failing else "degraded"
    status = "error" if failing else "degraded" if degraded else "ok"
    return HealthReport(status, services, degraded, failing)


def body(report: HealthReport, request: Any) -> tuple[dict[str, Any], int]:
    """The JSON answer and its HTTP status (shared with ``/api/admin/health``)."""
    if report.failing:
        return {"status": "error", "error": "unavailable", "message": report.reasons(),
                "failing": sorted(report.failing), "degraded": report.degraded, "services": report.services,
                "timestamp": now_rfc3339(), "request_id": request.request_id}, 503
    if report.degraded:
        return {"status": "degraded", "services": report.services, "degraded": report.degraded}, 200
    return {"status": "ok", "services": report.services}, 200


async def health(registry: Registry, request: Any) -> Response:
    answer, status = body(await probe(registry), request)
    return json_response(answer, status)
