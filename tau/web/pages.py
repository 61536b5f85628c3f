"""``/``: the web app's shell page, and its static ES modules and stylesheet under ``/app/``.

The shell is one HTML page holding no data and no inline script (the strict CSP of
``tau.http.pageheaders``, widened only by ``frame-src 'self'`` for the sandboxed frame a message's
HTML is read in). It loads ``/app/shell.js``, which signs in through ``/api/session`` (HttpOnly
cookies, CSRF token in memory: ``tau.http.cookie_session``) and imports each view from
``/app/views/NAME.js``.

The page links its assets with ``?v=`` the hash of all of them: a request naming the current
version is cached for a year (``immutable``), anything else is revalidated by ETag, so an upgrade
is seen at the next page load and nothing stale is ever run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tau.http.pageheaders import page_headers
from tau.http.router import Response, query_arg

if TYPE_CHECKING:
    from tau.registry import Registry

STATIC = Path(__file__).parent / "static"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml",
         ".png": "image/png"}
#: blob: images: a chat attachment decrypted in the page and previewed (never a remote image)
SHELL_HEADERS = {**page_headers(frame_src="'self'", img_src="'self' data: blob:"), "Cache-Control": "no-store"}
LONG = "public, max-age=31536000, immutable"


def load_assets(root: Path = STATIC) -> dict[str, bytes]:
    """Every servable file under ``root`` by its path below it (``views/mail.js``)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.suffix in TYPES and p.name != "index.html"}  # the shell is at /


def version(assets: dict[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name, data in sorted(assets.items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def register(registry: Registry, http: Any) -> None:
    assets = load_assets()
    current = version(assets)
    etags = {name: '"' + hashlib.sha256(data).hexdigest()[:20] + '"' for name, data in assets.items()}
    shell = (STATIC / "index.html").read_text().replace("{{v}}", current).encode()

    async def page(request: Any) -> Response:
        return Response(shell, 200, "text/html; charset=utf-8", dict(SHELL_HEADERS))

    async def asset(request: Any, name: str, folder: str = "") -> Response:
        path = folder + name
        data = assets.get(path)
        if data is None:
            from tau.http.errors import HttpError

            raise HttpError(404, "not_found", "no such file")
        headers = {"X-Content-Type-Options": "nosniff", "ETag": etags[path],
                   "Cache-Control": LONG if query_arg(request, "v") == current else "no-cache"}
        if path.endswith(".html"):  # a page of its own (the chat's dev page): the shell's strict rules
            headers.update(SHELL_HEADERS)
        if (request.getHeader(b"if-none-match") or b"").decode("latin-1") == etags[path]:
            return Response(b"", 304, TYPES[Path(path).suffix], headers)
        return Response(data, 200, TYPES[Path(path).suffix], headers)

    async def nested(request: Any, folder: str, name: str) -> Response:
        return await asset(request, name, folder + "/")

    http.route("GET", "/", page, auth="none")
    http.route("GET", "/app/{name}", asset, auth="none")
    http.route("GET", "/app/{folder}/{name}", nested, auth="none")  # views/, chat/
