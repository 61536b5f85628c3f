"""``/app/``: tau web's static files (ES modules, CSS, HTML) from ``tau/web/static/``.

Files are read once at install and served with the strict CSP of tau's own pages
(``tau.http.pageheaders``): script and style only from this origin, nothing inline, so the views
must build their DOM from text nodes. ``/app/views-dev.html`` is a developer page that signs in with
the password grant and mounts one view (``?view=calendar|files|contacts``) without the shell.
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
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


def files() -> dict[str, tuple[bytes, str]]:
    """URL path under /app/ → (bytes, content type), for every servable file under ``STATIC``."""
    out = {}
    for path in sorted(STATIC.rglob("*")):
        if path.is_file() and path.suffix in TYPES:
            out[path.relative_to(STATIC).as_posix()] = (path.read_bytes(), TYPES[path.suffix])
    return out


def install(registry: Registry, host: Any) -> None:
    http = getattr(host, "http", None)
    if http is None:  # no HTTP listener configured
        return
    headers = {**page_headers(), "Cache-Control": "no-cache"}
    for name, (body, ctype) in files().items():
        async def serve(request: Any, body: bytes = body, ctype: str = ctype) -> Response:
            return Response(body, 200, ctype, dict(headers))
        http.route("GET", f"/app/{name}", serve, auth="none")
    registry.services["web"] = "ok"
