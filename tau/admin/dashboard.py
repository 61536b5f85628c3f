"""``/admin``: the admin dashboard — one static page, a stylesheet and plain ES modules (no build step);
``/invite``: the page an invite link opens.

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
JS, CSS = "text/javascript; charset=utf-8", "text/css; charset=utf-8"
#: the page's ES modules (app.js imports the others) and the invite page's script
ASSETS = {"app.js": JS, "lib.js": JS, "users.js": JS, "domains.js": JS, "oauth.js": JS, "events.js": JS,
          "invite.js": JS, "app.css": CSS}


def register(registry: Registry, http: Any) -> None:
    pages = {name: (STATIC / name).read_bytes() for name in ("index.html", "invite.html")}
    assets = {name: (STATIC / name).read_bytes() for name in ASSETS}

    def html(name: str) -> Any:
        async def page(request: Any) -> Response:
            return Response(pages[name], 200, "text/html; charset=utf-8", dict(HEADERS))
        return page

    page = html("index.html")

    def serve(name: str) -> Any:
        async def asset(request: Any) -> Response:
            return Response(assets[name], 200, ASSETS[name], {"Cache-Control": "no-cache",
                                                               "X-Content-Type-Options": "nosniff"})
        return asset

    http.route("GET", "/admin", page, auth="none")
    http.route("GET", "/admin/", page, auth="none")
    http.route("GET", "/invite", html("invite.html"), auth="none")  # tau.admin.invites: the link's page
    for name in ASSETS:
        http.route("GET", f"/admin/{name}", serve(name), auth="none")
    http.accept_session_cookie("/api/admin/")
