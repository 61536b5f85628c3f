"""``/app/``: the browser app's static files from ``tau/web/static`` (ES modules, CSS, HTML).

Minimal on purpose (the web shell's serving replaces it): every file found at start-up gets one
``GET /app/<path>`` route, read into memory once; HTML pages carry the strict CSP of
``tau.http.pageheaders`` (script only from this origin, nothing inline), and the WebSocket
``/ws/messages`` is allowed as a connection target.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau.http.pageheaders import page_headers
from tau.http.router import Response

if TYPE_CHECKING:
    from tau.registry import Registry

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png"}
PAGE_HEADERS = {**page_headers(connect_src="'self' ws: wss:"), "Cache-Control": "no-store"}


def assets(root: Path = STATIC) -> dict[str, tuple[bytes, str]]:
    """URL path under /app/ → (content, content type), for the file types above."""
    return {path.relative_to(root).as_posix(): (path.read_bytes(), TYPES[path.suffix])
            for path in sorted(root.rglob("*")) if path.is_file() and path.suffix in TYPES}


def install(registry: Registry, host: Any) -> None:
    http = getattr(host, "http", None)
    if http is None:  # no HTTP listener configured
        return
    for name, (body, kind) in assets().items():
        headers = dict(PAGE_HEADERS) if kind.startswith("text/html") else {
            "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        http.route("GET", f"/app/{name}", _serve(body, kind, headers), auth="none")
    registry.services["web"] = "ok"


def _serve(body: bytes, kind: str, headers: dict[str, str]) -> Any:
    async def asset(request: Any) -> Response:
        return Response(body, 200, kind, dict(headers))
    return asset
