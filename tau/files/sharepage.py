"""``/s/TOKEN`` for people: an HTML page when a browser asks (``Accept: text/html``).

API clients (``curl``, ``tau.client``: no ``text/html`` in ``Accept``) keep the JSON listing and
raw bytes; a browser gets a page with the name, size and a download button (``?download=1``
serves the bytes, as an attachment, through the same path the API uses), a folder listing, a
password form and a real 404 page. Every name on these pages is a stranger's text: it is
HTML-escaped, and the page runs no script at all (the strict CSP of ``tau.http.pageheaders``).

A password typed into the form arrives once as ``?password=``; the answer then sets an HttpOnly
cookie for that link only (its path) and redirects to the clean URL, so the password does not
stay in the address bar or in every download link.
"""

from __future__ import annotations

import hashlib
import hmac
import html
from typing import Any
from urllib.parse import quote, urlencode

from tau.http.pageheaders import page_headers
from tau.http.router import Response

HEADERS = {**page_headers(), "Cache-Control": "no-store", "Vary": "Accept"}
UNLOCK_COOKIE = "tau_share_unlock"
UNLOCK_TTL = 3600


def wants_html(request: Any) -> bool:
    """A browser navigating here, not an API client asking for data or bytes."""
    accept = (request.getHeader(b"accept") or b"").decode("latin-1").lower()
    return "text/html" in accept and not request.args.get(b"download") and not request.args.get(b"raw")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def _page(title: str, body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    doc = ("<!doctype html><html lang=en><head><meta charset=utf-8>"
           "<meta name=viewport content='width=device-width, initial-scale=1'>"
           f"<meta name=color-scheme content='light dark'><title>{html.escape(title)} · tau</title>"
           "<link rel=stylesheet href='/app/app.css'></head><body><main class='share panel'>"
           f"{body}</main></body></html>")
    return Response(doc.encode("utf-8"), status, "text/html; charset=utf-8", {**HEADERS, **(headers or {})})


def _link(token: str, **query: str) -> str:
    return html.escape(f"/s/{quote(token, safe='')}" + ("?" + urlencode(query) if query else ""))


def file_page(token: str, name: str, size: int, path: str | None = None) -> Response:
    query = {"path": path, "download": "1"} if path else {"download": "1"}
    return _page(name or "Shared file", f"<h1>{html.escape(name or 'Shared file')}</h1>"
                 f"<p>{html.escape(_size(size))}</p>"
                 f"<p><a class=button href='{_link(token, **query)}' download>Download</a></p>")


def folder_page(token: str, name: str, items: list[dict[str, Any]], path: str) -> Response:
    rows = []
    for entry in items:
        label = html.escape(entry["name"] or "")
        if entry["type"] == "folder":
            cell = f"<a href='{_link(token, path=entry['path'])}'>{label}/</a>"
            size = "folder"
        else:
            cell = f"<a href='{_link(token, path=entry['path'], download='1')}' download>{label}</a>"
            size = html.escape(_size(int(entry.get("size") or 0)))
        rows.append(f"<tr><td>{cell}</td><td>{size}</td></tr>")
    title = name or "Shared folder"
    where = "" if path in ("", "/") else f"<p>{html.escape(path)}</p>"
    table = ("<table><thead><tr><th scope=col>Name</th><th scope=col>Size</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>") if rows else "<p>This folder is empty.</p>"
    zip_query = {"download": "zip"}
    return _page(title, f"<h1>{html.escape(title)}</h1>{where}{table}"
                 f"<p><a class=button href='{_link(token, **zip_query)}'>Download all (ZIP)</a></p>")


def error_page(status: int, code: str, token: str, headers: dict[str, str]) -> Response:
    """The page for an HttpError of the public side (404, password needed or wrong, throttled)."""
    kept = {k: v for k, v in headers.items() if k.lower() == "retry-after"}  # no Basic prompt in browsers
    if status == 401:
        wrong = "<p class=error role=alert>Wrong password.</p>" if code == "invalid_password" else ""
        return _page("Password required", "<h1>This link is protected</h1><p>Enter the password you were given.</p>"
                     f"<form method=get action='{_link(token)}'><div class=field><label for=share-password>"
                     "Password</label><input id=share-password name=password type=password required "
                     "autocomplete=current-password></div><button class=primary type=submit>Open</button>"
                     f"{wrong}</form>", 401, kept)
    if status == 429:
        return _page("Too many attempts", "<h1>Too many attempts</h1><p>Wait a moment, then try again.</p>", 429,
                     kept)
    if status == 404:
        return _page("Not found", "<h1>Link not found</h1><p>This link does not exist, was revoked or has "
                     "expired.</p>", 404)
    return _page("Unavailable", "<h1>Not available</h1><p>The link cannot be opened right now.</p>", status, kept)


def unlock_value(key: bytes, token: str, now: float) -> str:
    expires = int(now) + UNLOCK_TTL
    mac = hmac.new(key, f"{token}\0{expires}".encode(), hashlib.sha256).hexdigest()
    return f"{expires}.{mac}"


def unlocked(key: bytes, token: str, value: bytes | None, now: float) -> bool:
    """Whether the link's unlock cookie is genuine and unexpired."""
    if not value or len(value) > 100:
        return False
    expires, _, mac = value.decode("latin-1").partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    good = hmac.new(key, f"{token}\0{expires}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(good, mac)


def set_unlock(request: Any, key: bytes, token: str, now: float, secure: bool) -> Response:
    """Remember a correct password for this link and send the browser to the clean URL."""
    request.addCookie(UNLOCK_COOKIE, unlock_value(key, token, now), path=f"/s/{quote(token, safe='')}",
                      max_age=str(UNLOCK_TTL), httpOnly=True, sameSite="lax", secure=secure or None)
    return Response(b"", 303, "text/plain", {"Location": f"/s/{quote(token, safe='')}", "Cache-Control": "no-store"})
