"""Drafts over REST: what the webmail's compose form saves, where IMAP clients see it.

* ``POST /api/emails/drafts`` ``{to?, cc?, bcc?, subject?, text?, html?, attachments?, in_reply_to?,
  references?}`` → 201
  ``{"id", "mailbox"}``: the draft as a message in the user's Drafts mailbox (RFC 6154
  ``\\Drafts``) flagged ``\\Draft \\Seen`` — Thunderbird and any IMAP client list it there.
* ``PUT /api/emails/drafts/{id}`` (same body) → 200 ``{"id", "mailbox"}``: a new version replaces
  the old one (IMAP messages are immutable: appended, then the old one expunged; a new id).
* ``POST /api/emails`` with ``"draft_id"``: once sent, that draft is removed.

A draft is work in progress: its addresses may be half typed, so they are kept as given (one line
each, no checks beyond that); ``POST /api/emails`` checks them when it is sent. Only a message in
Drafts carrying ``\\Draft`` can be replaced or removed this way.
"""

from __future__ import annotations

from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response, read_json_object
from tau.mail import compose
from tau.mail.api_draft import attachment_input, thread_headers
from tau.mail.errors import MailError
from tau.mail.store import MailStoreError

MAX_FIELD = 2000


def _line(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ", ".join(v.strip() for v in value if v.strip())
    if not isinstance(value, str) or len(value) > MAX_FIELD or any(c in value for c in "\r\n\0"):
        raise HttpError(400, "invalid_request", f"{key} must be one line of text")
    return value.strip()


def parse(body: dict[str, Any]) -> tuple[compose.Draft, str]:
    """The draft (addresses as typed) and its Bcc line (kept in the draft, never sent)."""
    to, cc, bcc, subject = (_line(body, k) for k in ("to", "cc", "bcc", "subject"))
    text, html = body.get("text"), body.get("html")
    for name, value in (("text", text), ("html", html)):
        if value is not None and not isinstance(value, str):
            raise HttpError(400, "invalid_request", f"{name} must be a string")
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise HttpError(400, "invalid_request", "attachments must be a list of objects")
    parent, refs = thread_headers(body)
    draft = compose.Draft([to] if to else [], [cc] if cc else [], [], subject, text if text or html else "",
                          html, [attachment_input(a) for a in attachments], in_reply_to=parent, references=refs)
    return draft, bcc


async def _drafts_box(api: Any, user: str) -> Any:
    await api.store.ensure_defaults(user)
    box = next((b for b in await api.store.list_mailboxes(user) if b.special_use == "\\Drafts"), None)
    if box is None:
        raise HttpError(409, "no_drafts", "this account has no Drafts mailbox")
    return box


async def replaced(api: Any, user: str, draft_id: Any) -> tuple[int, int] | None:
    """(mailbox id, uid) of the draft ``draft_id`` names; 404 unless it is one of the user's drafts."""
    if draft_id is None:
        return None
    if not isinstance(draft_id, str):
        raise HttpError(400, "invalid_request", "draft_id must be a message id")
    box, meta = await api._message(user, draft_id)
    if box.special_use != "\\Drafts" or "\\Draft" not in meta.flags:
        raise HttpError(404, "not_found", "no such draft")
    return box.id, meta.uid


async def remove(api: Any, user: str, where: tuple[int, int]) -> None:
    await api.store.store_flags(where[0], [where[1]], "+", ["\\Deleted"], user=user)
    await api.store.expunge(where[0], [where[1]], user=user)


async def _store(api: Any, request: Any) -> dict[str, Any]:
    user = request.user
    draft, bcc = parse(await read_json_object(request))
    try:
        files: compose.Files = [await compose.attachment_bytes(api.registry, user, a) for a in draft.attachments]
    except MailError as exc:
        raise HttpError(exc.status, exc.code, exc.message, extra=exc.extra)
    msg = compose.build(user.address, draft, files, api.registry.config.tau.hostname)
    if bcc:
        msg["Bcc"] = bcc
    raw = compose.as_bytes(msg)
    if len(raw) > api.registry.config.limits.message_size:
        raise HttpError(413, "payload_too_large", "the draft is larger than the size limit")
    box = await _drafts_box(api, user.address)
    try:
        saved = await api.store.append(user.address, box.name, raw, ["\\Draft", "\\Seen"])
    except MailStoreError as exc:
        raise HttpError(409 if exc.code == "quota_exceeded" else 400, exc.code, exc.message)
    return {"id": f"{box.id}.{saved.uid}", "mailbox": box.name}


def register(http: Any, api: Any) -> None:
    async def create(request: Any) -> Response:
        return json_response(await _store(api, request), 201)

    async def replace(request: Any, id: str) -> Response:
        old = await replaced(api, request.user.address, id)
        saved = await _store(api, request)
        if old is not None:
            await remove(api, request.user.address, old)
        return json_response(saved)

    http.route("POST", "/api/emails/drafts", create, scope="mail")
    http.route("PUT", "/api/emails/drafts/{id}", replace, scope="mail")
