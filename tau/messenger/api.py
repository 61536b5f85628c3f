"""REST endpoints of TauMessenger (INTERFACE.md: /api/messages, /api/presence, /api/keys).

Thin: parse the request, call :class:`~tau.messenger.domain.Messenger`, shape the answer. Lists
are ``{"items", "next_cursor"}``; errors are the contract's JSON body (``device_mismatch``
adds ``missing``/``extra``/``stale`` device lists, as Signal-Server's 409/410 answers do).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tau.http.errors import HttpError
from tau.http.router import json_response, query_arg, read_json_object
from tau.messenger.domain import Messenger, MessengerError, address, id_list, int_id
from tau.messenger.keys import MAX_DEVICE_ID
from tau.messenger.messages import DeviceMismatch

MAX_LIMIT = 500


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"m{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("m"):
            raise ValueError
        return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise HttpError(400, "invalid_cursor", "cursor is not one this server gave out")


def _limit(request: Any, default: int = 100) -> int:
    raw = query_arg(request, "limit")
    try:
        limit = int(raw) if raw else default
    except ValueError:
        raise HttpError(400, "invalid_query", "limit must be an integer")
    return max(1, min(MAX_LIMIT, limit))


def _device(request: Any) -> int:
    raw = query_arg(request, "device_id") or (request.getHeader(b"x-tau-device") or b"0").decode("latin-1")
    try:
        device = int(raw)
    except ValueError:
        raise HttpError(400, "invalid_query", "device_id must be an integer")
    if not 0 <= device <= MAX_DEVICE_ID:
        raise HttpError(400, "invalid_query", "device_id out of range")
    return device


def _since(raw: str | None) -> tuple[int, int]:
    """``since`` is a message id (exclusive) or an RFC 3339 time (inclusive): (since_id, since_ms)."""
    if not raw:
        return 0, 0
    if raw.isdigit():
        return int(raw), 0
    try:
        when = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, "invalid_query", "since is a message id or an RFC 3339 time")
    if when.tzinfo is None:
        raise HttpError(400, "invalid_query", "since needs a time zone (Z or +hh:mm)")
    return 0, int(when.timestamp() * 1000)


def guarded(handler: Any) -> Any:
    """Domain errors become the contract's JSON errors."""

    async def run(request: Any, **params: Any) -> Any:
        try:
            return await handler(request, **params)
        except DeviceMismatch as exc:
            status = 410 if exc.stale and not exc.missing and not exc.extra else 409
            raise HttpError(status, "device_mismatch", "the device lists are out of date", extra=exc.as_dict())
        except MessengerError as exc:
            raise HttpError(exc.status, exc.code, exc.message)

    return run


def _page(items: list[dict[str, Any]], limit: int) -> Any:
    """One page of a list: a full page names the next cursor (its last id)."""
    nxt = encode_cursor(int(items[-1]["id"])) if len(items) == limit else None
    return json_response({"items": items, "next_cursor": nxt})


Route = Callable[[str, str, Any], None]


def register(http: Any, messenger: Messenger) -> None:
    def route(method: str, pattern: str, handler: Any) -> None:
        http.route(method, pattern, guarded(handler), scope="chat")

    _keys(route, messenger)
    _conversations(route, messenger)
    _messages(route, messenger)
    _presence(route, messenger)


def _keys(route: Route, messenger: Messenger) -> None:
    async def put_keys(request: Any) -> Any:
        count = await messenger.upload_keys(request.user, await read_json_object(request))
        return json_response({"one_time_prekeys": count})

    async def get_own_keys(request: Any) -> Any:
        return json_response({"devices": await messenger.prekey_counts(request.user)})

    async def get_keys(request: Any, user: str) -> Any:
        raw = query_arg(request, "device_id")
        device = _device(request) if raw else None
        bundles = await messenger.fetch_bundles(user, device)
        return json_response({"user": address(user), "devices": bundles})

    async def delete_device(request: Any, device_id: str) -> Any:
        if not await messenger.delete_device(request.user, int_id(device_id, "device_id")):
            raise HttpError(404, "device_not_found", "no such device")
        return json_response({}, 200)

    route("PUT", "/api/keys", put_keys)
    route("GET", "/api/keys", get_own_keys)
    route("GET", "/api/keys/{user}", get_keys)
    route("DELETE", "/api/devices/{device_id}", delete_device)


def _conversations(route: Route, messenger: Messenger) -> None:
    async def post_conversation(request: Any) -> Any:
        conv = await messenger.create_conversation(request.user, await read_json_object(request))
        return json_response(conv, 201)

    async def list_conversations(request: Any) -> Any:
        cursor = query_arg(request, "cursor")
        limit = _limit(request)
        items = await messenger.list_conversations(request.user, decode_cursor(cursor) if cursor else 0, limit)
        return _page(items, limit)

    async def get_conversation(request: Any, conv_id: str) -> Any:
        return json_response(await messenger.get_conversation(request.user, int_id(conv_id, "id")))

    async def patch_conversation(request: Any, conv_id: str) -> Any:
        body = await read_json_object(request)
        return json_response(await messenger.change_members(request.user, int_id(conv_id, "id"), body))

    route("POST", "/api/conversations", post_conversation)
    route("GET", "/api/conversations", list_conversations)
    route("GET", "/api/conversations/{conv_id}", get_conversation)
    route("PATCH", "/api/conversations/{conv_id}", patch_conversation)


def _messages(route: Route, messenger: Messenger) -> None:
    async def post_message(request: Any) -> Any:
        body = await read_json_object(request)
        device = _device(request) if "device_id" not in body else None
        return json_response(await messenger.send(request.user, body, device_id=device), 201)

    async def get_messages(request: Any) -> Any:
        conv_raw = query_arg(request, "conversation")
        conv = int_id(conv_raw, "conversation") if conv_raw else None
        since_id, since_ms = _since(query_arg(request, "since"))
        cursor = query_arg(request, "cursor")
        if cursor:
            since_id = max(since_id, decode_cursor(cursor))
        limit = _limit(request)
        return _page(await messenger.history(request.user, conv, since_id, since_ms, limit, _device(request)), limit)

    async def post_ack(request: Any) -> Any:
        body = await read_json_object(request)
        device = int_id(body.get("device_id", _device(request)), "device_id")
        await messenger.ack(request.user, device, id_list(body.get("ids"), "ids"))
        return json_response({})

    async def post_receipts(request: Any) -> Any:
        body = await read_json_object(request)
        conv = int_id(body.get("conversation"), "conversation")
        await messenger.mark(request.user, body.get("kind"), conv, id_list(body.get("ids"), "ids"))
        return json_response({})

    route("POST", "/api/messages", post_message)
    route("GET", "/api/messages", get_messages)
    route("POST", "/api/messages/ack", post_ack)
    route("POST", "/api/messages/receipts", post_receipts)


def _presence(route: Route, messenger: Messenger) -> None:
    async def get_presence(request: Any) -> Any:
        users = [u for u in (query_arg(request, "users") or "").split(",") if u.strip()]
        if len(users) > 200:
            raise HttpError(400, "invalid_query", "at most 200 users at once")
        users = users or [request.user.address]
        return json_response({"items": await messenger.presence_of(request.user, users)})

    async def put_presence(request: Any) -> Any:
        body = await read_json_object(request)
        await messenger.set_status(request.user, body.get("status"))
        return json_response({"status": body["status"]})

    route("GET", "/api/presence", get_presence)
    route("PUT", "/api/presence", put_presence)
