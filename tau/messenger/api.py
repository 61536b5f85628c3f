"""REST endpoints of TauMessenger (INTERFACE.md: /api/messages, /api/presence, /api/keys).

Thin: parse the request, call :class:`~tau.messenger.domain.Messenger`, shape the answer. Lists
are ``{"items", "next_cursor"}``; errors are the contract's JSON body (``device_mismatch``
adds ``missing``/``extra``/``stale`` device lists, as Signal-Server's 409/410 answers do).
"""

from __future__ import annotations

import base64
import binascii
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


def guarded(handler: Any, messenger: Messenger) -> Any:
    """Domain errors become the contract's JSON errors; every call renews a REST presence lease."""

    async def run(request: Any, **params: Any) -> Any:
        messenger.api_activity(request.user)
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


class MessengerApi:
    """The handlers, one per route; domain errors become HTTP errors in :func:`guarded`."""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    # -- keys --------------------------------------------------------------------------------------
    async def put_keys(self, request: Any) -> Any:
        count = await self.messenger.upload_keys(request.user, await read_json_object(request))
        return json_response({"one_time_prekeys": count})

    async def get_own_keys(self, request: Any) -> Any:
        return json_response({"devices": await self.messenger.prekey_counts(request.user)})

    async def get_keys(self, request: Any, user: str) -> Any:
        raw = query_arg(request, "device_id")
        device = _device(request) if raw else None
        bundles = await self.messenger.fetch_bundles(user, device)
        return json_response({"user": address(user), "devices": bundles})

    async def delete_device(self, request: Any, device_id: str) -> Any:
        if not await self.messenger.delete_device(request.user, int_id(device_id, "device_id")):
            raise HttpError(404, "device_not_found", "no such device")
        return json_response({}, 200)

    # -- conversations -----------------------------------------------------------------------------
    async def post_conversation(self, request: Any) -> Any:
        conv = await self.messenger.create_conversation(request.user, await read_json_object(request))
        return json_response(conv, 201)

    async def list_conversations(self, request: Any) -> Any:
        cursor = query_arg(request, "cursor")
        limit = _limit(request)
        items = await self.messenger.list_conversations(request.user, decode_cursor(cursor) if cursor else 0, limit)
        return _page(items, limit)

    async def get_conversation(self, request: Any, conv_id: str) -> Any:
        return json_response(await self.messenger.get_conversation(request.user, int_id(conv_id, "id")))

    async def patch_conversation(self, request: Any, conv_id: str) -> Any:
        body = await read_json_object(request)
        return json_response(await self.messenger.change_members(request.user, int_id(conv_id, "id"), body))

    # -- messages ----------------------------------------------------------------------------------
    async def post_message(self, request: Any) -> Any:
        body = await read_json_object(request)
        device = _device(request) if "device_id" not in body else None
        return json_response(await self.messenger.send(request.user, body, device_id=device), 201)

    async def get_messages(self, request: Any) -> Any:
        conv_raw = query_arg(request, "conversation")
        conv = int_id(conv_raw, "conversation") if conv_raw else None
        since_id, since_ms = _since(query_arg(request, "since"))
        cursor = query_arg(request, "cursor")
        if cursor:
            since_id = max(since_id, decode_cursor(cursor))
        limit = _limit(request)
        items = await self.messenger.history(request.user, conv, since_id, since_ms, limit, _device(request))
        return _page(items, limit)

    async def post_ack(self, request: Any) -> Any:
        body = await read_json_object(request)
        device = int_id(body.get("device_id", _device(request)), "device_id")
        await self.messenger.ack(request.user, device, id_list(body.get("ids"), "ids"))
        return json_response({})

    async def post_receipts(self, request: Any) -> Any:
        body = await read_json_object(request)
        conv = int_id(body.get("conversation"), "conversation")
        await self.messenger.mark(request.user, body.get("kind"), conv, id_list(body.get("ids"), "ids"))
        return json_response({})

    # -- presence ----------------------------------------------------------------------------------
    async def get_presence(self, request: Any) -> Any:
        users = [u for u in (query_arg(request, "users") or "").split(",") if u.strip()]
        if len(users) > 200:
            raise HttpError(400, "invalid_query", "at most 200 users at once")
        users = users or [request.user.address]
        return json_response({"items": await self.messenger.presence_of(request.user, users)})

    async def put_presence(self, request: Any) -> Any:
        body = await read_json_object(request)
        await self.messenger.set_status(request.user, body.get("status"), rest=True)
        return json_response({"status": body["status"]})


def register(http: Any, messenger: Messenger) -> None:
    api = MessengerApi(messenger)
    for method, pattern, handler in (
        ("PUT", "/api/keys", api.put_keys),
        ("GET", "/api/keys", api.get_own_keys),
        ("GET", "/api/keys/{user}", api.get_keys),
        ("DELETE", "/api/devices/{device_id}", api.delete_device),
        ("POST", "/api/conversations", api.post_conversation),
        ("GET", "/api/conversations", api.list_conversations),
        ("GET", "/api/conversations/{conv_id}", api.get_conversation),
        ("PATCH", "/api/conversations/{conv_id}", api.patch_conversation),
        ("POST", "/api/messages", api.post_message),
        ("GET", "/api/messages", api.get_messages),
        ("POST", "/api/messages/ack", api.post_ack),
        ("POST", "/api/messages/receipts", api.post_receipts),
        ("GET", "/api/presence", api.get_presence),
        ("PUT", "/api/presence", api.put_presence),
    ):
        http.route(method, pattern, guarded(handler, messenger), scope="chat")
