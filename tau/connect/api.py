"""REST endpoints of TauConnect (INTERFACE.md: ``/api/calls``) and the web call page.

``POST /api/calls`` → 201 with ``join_url`` and TURN credentials (and, once, the guests' join
links: only a hash of a guest token is stored). ``GET /api/calls`` is the call history
(``{"items", "next_cursor"}``, newest first, ``?status=``), ``GET/PATCH /api/calls/{id}`` one call.
``/call/{id}`` serves the plain HTML/JS call page; it authenticates itself in the browser.
"""

from __future__ import annotations

import base64
import binascii
from importlib import resources
from typing import Any

from tau.connect.calls import Calls, Identity
from tau.connect.store import CallError
from tau.http.errors import HttpError
from tau.http.pageheaders import page_headers
from tau.http.router import Response, json_response, query_arg, read_json_object

MAX_LIMIT = 200
ASSETS = {"call.js": "text/javascript; charset=utf-8", "call.css": "text/css; charset=utf-8"}
#: the page talks to its own origin only; media elements play MediaStreams (strict CSP otherwise)
PAGE_HEADERS = page_headers(connect_src="'self' ws: wss:", media_src="'self' blob: mediastream:",
                            img_src="'self' data:")


def _call_error(exc: CallError) -> HttpError:
    return HttpError(exc.status, exc.code, exc.message)


def encode_cursor(key: tuple[int, str]) -> str:
    return base64.urlsafe_b64encode(f"c{key[0]}:{key[1]}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, call_id = raw[1:].partition(":")
        if not raw.startswith("c") or not call_id:
            raise ValueError
        return int(stamp), call_id
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HttpError(400, "invalid_cursor", "cursor is not one this server gave out")


def _asset(name: str) -> bytes:
    return resources.files("tau.connect").joinpath("static", name).read_bytes()


def register(http: Any, calls: Calls) -> None:
    async def create(request: Any) -> Response:
        body = await read_json_object(request)
        try:
            return json_response(await calls.create(request.user, body), status=201)
        except CallError as exc:
            raise _call_error(exc)

    async def history(request: Any) -> Response:
        raw = query_arg(request, "limit")
        try:
            limit = max(1, min(MAX_LIMIT, int(raw))) if raw else 50
        except ValueError:
            raise HttpError(400, "invalid_query", "limit must be an integer")
        cursor = query_arg(request, "cursor")
        before = decode_cursor(cursor) if cursor else None
        try:
            items = await calls.history(request.user, limit + 1, before, query_arg(request, "status"))
        except CallError as exc:
            raise _call_error(exc)
        more = len(items) > limit
        items = items[:limit]
        next_cursor = encode_cursor(items[-1]["_key"]) if more else None
        for item in items:
            item.pop("_key")
        return json_response({"items": items, "next_cursor": next_cursor})

    async def get_one(request: Any, id: str) -> Response:
        try:
            return json_response(await calls.view(id, Identity.of_user(request.user)))
        except CallError as exc:
            raise _call_error(exc)

    async def patch(request: Any, id: str) -> Response:
        body = await read_json_object(request)
        try:
            return json_response(await calls.patch(request.user, id, body))
        except CallError as exc:
            raise _call_error(exc)

    async def page(request: Any, id: str) -> Response:
        # the page is the same for every call: who may join is decided by /ws/signal, not here
        return Response(_asset("call.html"), 200, "text/html; charset=utf-8", dict(PAGE_HEADERS))

    async def asset(request: Any, name: str) -> Response:
        if name not in ASSETS:
            raise HttpError(404, "not_found", "no such file")
        return Response(_asset(name), 200, ASSETS[name], {"X-Content-Type-Options": "nosniff"})

    http.route("POST", "/api/calls", create, scope="calls")
    http.route("GET", "/api/calls", history, scope="calls")
    http.route("GET", "/api/calls/{id}", get_one, scope="calls")
    http.route("PATCH", "/api/calls/{id}", patch, scope="calls")
    http.route("GET", "/call/assets/{name}", asset, auth="none")
    http.route("GET", "/call/{id}", page, auth="none")
