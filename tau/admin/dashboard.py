"""``/admin``: the admin dashboard — one static page and a little vanilla JS, no build chain.

The page holds no data and needs no session: the script signs in with the token endpoint
(password grant, TOTP code when 2FA is on), keeps the access token in ``sessionStorage`` (or takes
it from a ``#token=`` fragment, which never reaches the server or its logs) and renders what
``/api/admin/*`` returns. Everything is inserted as text nodes, never as HTML, so addresses and
queue errors cannot inject markup; the CSP allows only this origin's script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tau.http.router import Response

HEADERS = {"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline';"
           " connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}

STATIC = Path(__file__).parent / "static"



def register(registry: Any, http: Any) -> None:
    page_bytes = (STATIC / "index.html").read_bytes()
    script_bytes = (STATIC / "app.js").read_bytes()

    async def page(request: Any) -> Response:
        return Response(page_bytes, 200, "text/html; charset=utf-8", dict(HEADERS))

    async def script(request: Any) -> Response:
        return Response(script_bytes, 200, "text/javascript; charset=utf-8", {"Cache-Control": "no-cache"})

    http.route("GET", "/admin", page, auth="none")
    http.route("GET", "/admin/", page, auth="none")
    http.route("GET", "/admin/app.js", script, auth="none")
