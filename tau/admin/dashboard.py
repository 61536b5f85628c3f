"""``/admin``: the admin dashboard — one static page, a stylesheet and a little vanilla JS.

The page holds no data and no token: signing in (``POST /api/session``, password + TOTP code when
2FA is on) sets HttpOnly, SameSite=Strict cookies page script cannot read (``tau.http.cookie_session``),
and the script keeps only the session's CSRF token in memory. A ``#token=`` link (the fragment never
reaches the server or its logs) is turned into such a session at once. Everything is inserted as
text nodes, never as HTML, so addresses and queue errors cannot inject markup; the strict CSP
(``tau.http.pageheaders``) allows only this origin's script and stylesheet, nothing inline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau.http.pageheaders import page_headers
from tau.http.router import Response

if TYPE_CHECKING:
    from tau.registry import Registry

HEADERS = {**page_headers(), "Cache-Control": "no-store"}
STATIC = Path(__file__).parent / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}


def register(registry: Registry, http: Any) -> None:
    page_bytes = (STATIC / "index.html").read_bytes()
    assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    async def page(request: Any) -> Response:
        return Response(page_bytes, 200, "text/html; charset=utf-8", dict(HEADERS))

    def serve(name: str) -> Any:
        async def asset(request: Any) -> Response:
            return Response(assets[name], 200, ASSETS[name], {"Cache-Control": "no-cache",
                                                               "X-Content-Type-Options": "nosniff"})
        return asset

    http.route("GET", "/admin", page, auth="none")
    http.route("GET", "/admin/", page, auth="none")
    for name in ASSETS:
        http.route("GET", f"/admin/{name}", serve(name), auth="none")
    http.accept_session_cookie("/api/admin/")
