"""REST ``/api/emails`` (INTERFACE.md, HTTP): the same mail store IMAP serves.

Message ids are ``MAILBOXID.UID`` (both numbers, opaque to clients); a move gives a new id, as
IMAP's MOVE gives a new UID (RFC 6851). Every call passes ``user=`` to the store, which checks the
mailbox belongs to the caller: another user's id answers 404 exactly like a missing one.
List order is newest first; the cursor is the last UID served. ``q`` maps onto the store's
``Search``: ``from:`` ``to:`` ``subject:`` ``is:unread|read|starred`` and free words (full text).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response, query_arg, read_json_object
from tau.http.usercontent import user_content_headers
from tau.mail import smime_inbound
from tau.mail.errors import MailError
from tau.mail.mime import view
from tau.mail.store import MailboxNotFound, MailStoreError, Search
from tau.mail.store.names import InvalidFlag

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_LIMIT = 200
_ID = re.compile(r"^(\d{1,18})\.(\d{1,18})$")


def rfc3339(epoch: int | float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_id(value: str) -> tuple[int, int]:
    m = _ID.match(value)
    if not m:
        raise HttpError(404, "not_found", "no such message")
    return int(m.group(1)), int(m.group(2))


def compile_query(q: str) -> Search:
    """Gmail-like words → a Search tree (RFC 3501 §6.4.4 semantics: AND of the terms)."""
    terms: list[tuple[Any, ...]] = []
    for word in re.findall(r'(?:[a-z]+:)?"[^"]*"|\S+', q.strip())[:20]:
        key, sep, value = word.partition(":")
        value = value.strip('"')
        if sep and key.lower() in ("from", "to", "cc", "subject") and value:
            terms.append((key.lower(), value))
        elif sep and key.lower() == "is" and value.lower() in ("unread", "read", "starred", "unstarred"):
            terms.append({"unread": ("unseen",), "read": ("seen",), "starred": ("flagged",),
                          "unstarred": ("unflagged",)}[value.lower()])
        else:
            terms.append(("text", word.strip('"')))
    return Search(("and", *terms) if terms else ("all",))


class EmailsAPI:
    def __init__(self, registry: Registry, store: Any) -> None:
        from tau.mail.api_threads import ThreadCache

        self.registry = registry
        self.store = store
        self.threads = ThreadCache()    # ``GET /api/emails?thread=``'s threads by message set

    async def _box(self, user: str, name: str) -> Any:
        box = await self.store.get_mailbox(user, name)
        if box is None:
            raise HttpError(404, "mailbox_not_found", f"no mailbox {name}")
        return box

    async def load(self, user: str, message_id: str) -> tuple[Any, Any, bytes]:
        """(mailbox, meta, raw bytes) of one of ``user``'s messages; 404 for anyone else's."""
        box, meta = await self._message(user, message_id)
        return box, meta, await self.store.read(meta.blob_key)

    async def _message(self, user: str, message_id: str) -> tuple[Any, Any]:
        mailbox_id, uid = parse_id(message_id)
        box = await self.store.get_mailbox_by_id(user, mailbox_id)
        if box is None:
            raise HttpError(404, "not_found", "no such message")
        metas = await self.store.fetch(mailbox_id, [uid], True, user=user)
        if not metas:
            raise HttpError(404, "not_found", "no such message")
        return box, metas[0]

    def _item(self, box: Any, meta: Any) -> dict[str, Any]:
        from tau.mail.mime import from_json

        parsed = from_json(meta.parsed_json)
        return {"id": f"{box.id}.{meta.uid}", "mailbox": box.name, "from": list(parsed.from_addrs),
                "to": list(parsed.to_addrs), "cc": list(parsed.cc_addrs), "subject": parsed.subject,
                "date": rfc3339(parsed.date.timestamp() if parsed.date else meta.internal_date),
                "received": rfc3339(meta.internal_date), "flags": list(meta.flags),
                "starred": "\\Flagged" in meta.flags, "read": "\\Seen" in meta.flags, "size": meta.size,
                "preview": parsed.preview, "message_id": parsed.message_id}

    # -- handlers -----------------------------------------------------------------------------

    async def list(self, request: Any) -> Response:
        user = request.user.address
        thread = query_arg(request, "thread")
        if thread:
            from tau.mail import api_threads

            return await api_threads.list_thread(self, request, thread)
        box = await self._box(user, query_arg(request, "mailbox", "INBOX") or "INBOX")
        try:
            limit = int(query_arg(request, "limit", "50") or 50)
            cursor = query_arg(request, "cursor")
            before = int(cursor) if cursor else None
        except ValueError:
            raise HttpError(400, "invalid_query", "limit and cursor must be numbers")
        if not 1 <= limit <= MAX_LIMIT:
            raise HttpError(400, "invalid_query", f"limit must be 1..{MAX_LIMIT}")
        q = query_arg(request, "q", "") or ""
        if len(q) > 500:
            raise HttpError(400, "invalid_query", "q is too long")
        try:
            uids = await (self.store.search(box.id, compile_query(q), user=user) if q.strip()
                          else self.store.uids(box.id, user=user))
        except MailStoreError as exc:
            raise HttpError(400, exc.code, exc.message)
        uids = sorted((u for u in uids if before is None or u < before), reverse=True)
        page = uids[:limit]
        metas = await self.store.fetch(box.id, page, True, user=user) if page else []
        items = [self._item(box, m) for m in sorted(metas, key=lambda m: -m.uid)]
        more = len(uids) > limit
        return json_response({"items": items, "next_cursor": str(page[-1]) if more else None})

    async def get(self, request: Any, id: str) -> Response:
        user = request.user.address
        box, meta = await self._message(user, id)
        raw = await self.store.read(meta.blob_key)
        if query_arg(request, "raw") in ("1", "true"):
            # anyone can send these bytes: served as an inert attachment (tau.http.usercontent)
            headers = user_content_headers("message/rfc822", f"{id}.eml", inline_ok=False)
            return Response(raw, 200, headers.pop("Content-Type"), headers)
        item = self._item(box, meta)
        item.update(await self.registry.run_in_thread(view.render, raw))
        item.update(await smime_inbound.rest_view(self.registry, request.user, raw, meta.bodystructure))
        return json_response(item)

    async def send(self, request: Any) -> Response:
        from tau.mail import api_drafts, send
        from tau.mail.api_draft import parse_draft

        body = await read_json_object(request)
        draft = parse_draft(body)
        replaces = await api_drafts.replaced(self, request.user.address, body.get("draft_id"))
        try:
            sent = await send.send(self.registry, self.store, request.user, draft)
        except MailError as exc:      # the domain's refusal, in HTTP's words (INTERFACE.md)
            raise HttpError(exc.status, exc.code, exc.message, extra=exc.extra)
        if replaces is not None:     # sent: the draft it continued goes (as a mail client does)
            await api_drafts.remove(self, request.user.address, replaces)
        return json_response(sent, 202)

    async def patch(self, request: Any, id: str) -> Response:
        user = request.user.address
        box, meta = await self._message(user, id)
        body = await read_json_object(request)
        add: list[str] = []
        remove: list[str] = []
        for key, flag in (("starred", "\\Flagged"), ("read", "\\Seen")):
            if key in body:
                if not isinstance(body[key], bool):
                    raise HttpError(400, "invalid_request", f"{key} must be true or false")
                (add if body[key] else remove).append(flag)
        try:
            if "flags" in body:
                flags = body["flags"]
                if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags) or len(flags) > 50:
                    raise HttpError(400, "invalid_request", "flags must be a list of strings")
                await self.store.store_flags(box.id, [meta.uid], "=", flags, user=user)
            if add:
                await self.store.store_flags(box.id, [meta.uid], "+", add, user=user)
            if remove:
                await self.store.store_flags(box.id, [meta.uid], "-", remove, user=user)
            target = body.get("mailbox")
            if target is not None:
                if not isinstance(target, str) or not target:
                    raise HttpError(400, "invalid_request", "mailbox must be a mailbox name")
                dest = await self._box(user, target)
                if dest.id != box.id:
                    result = await self.store.move(box.id, [meta.uid], user, dest.name, user=user)
                    box, meta = await self._message(user, f"{dest.id}.{result.pairs[0][1]}")
                    return json_response(self._item(box, meta))
        except InvalidFlag as exc:
            raise HttpError(400, "invalid_flag", str(exc))
        except MailboxNotFound as exc:
            raise HttpError(404, "mailbox_not_found", exc.message)
        except MailStoreError as exc:
            raise HttpError(409 if exc.code == "quota_exceeded" else 400, exc.code, exc.message)
        box, meta = await self._message(user, f"{box.id}.{meta.uid}")
        return json_response(self._item(box, meta))

    async def delete(self, request: Any, id: str) -> Response:
        """Move to Trash (RFC 6154 \\Trash); a message already in Trash is expunged."""
        user = request.user.address
        box, meta = await self._message(user, id)
        if box.special_use == "\\Trash":
            await self.store.store_flags(box.id, [meta.uid], "+", ["\\Deleted"], user=user)
            await self.store.expunge(box.id, [meta.uid], user=user)
            return json_response({"id": id, "deleted": True})
        trash = next((b for b in await self.store.list_mailboxes(user) if b.special_use == "\\Trash"), None)
        if trash is None:
            raise HttpError(409, "no_trash", "this account has no Trash mailbox")
        result = await self.store.move(box.id, [meta.uid], user, trash.name, user=user)
        return json_response({"id": f"{trash.id}.{result.pairs[0][1]}", "mailbox": trash.name, "deleted": False})


def register(registry: Registry, http: Any, store: Any) -> EmailsAPI:
    from tau.mail import api_drafts, api_read

    api = EmailsAPI(registry, store)
    api_read.register(http, api)
    api_drafts.register(http, api)
    http.route("GET", "/api/emails", api.list, scope="mail")
    http.route("POST", "/api/emails", api.send, scope="mail")
    http.route("GET", "/api/emails/{id}", api.get, scope="mail")
    http.route("PATCH", "/api/emails/{id}", api.patch, scope="mail")
    http.route("DELETE", "/api/emails/{id}", api.delete, scope="mail")
    return api
