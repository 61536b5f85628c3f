"""Read-side REST a mail client needs besides ``/api/emails``: the mailbox list with counts and
attachment downloads.

* ``GET /api/mailboxes`` → ``{"items": [{"name", "special_use", "messages", "unread"}], "next_cursor": null}``
  (the counts IMAP STATUS gives, read from the mailbox rows: no scan of the messages).
* ``GET /api/emails/{id}/attachments/{n}`` → the bytes of part ``n`` (the ``part`` numbers
  ``GET /api/emails/{id}`` lists), served as inert user content (tau.http.usercontent): anyone
  can send a message, so an ``evil.html`` attachment must never render on tau's origin.
"""

from __future__ import annotations

import email
import email.policy
from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response
from tau.http.usercontent import user_content_headers
from tau.mail.mime import view


def attachment(raw: bytes, n: int) -> tuple[str, str, bytes]:
    """(filename, declared type, decoded bytes) of entity ``n`` in ``email``'s walk() order."""
    if not view.is_ordinary(raw):
        raise HttpError(404, "not_found", "this message is too complex to take apart here")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    for index, part in enumerate(msg.walk()):
        if index == n and not part.is_multipart():
            name = part.get_filename() or f"attachment-{n}"
            return name, part.get_content_type(), part.get_payload(decode=True) or b""
    raise HttpError(404, "not_found", "no such attachment")


def register(http: Any, api: Any) -> None:
    async def mailboxes(request: Any) -> Response:
        boxes = await api.store.list_mailboxes(request.user.address)
        return json_response({"items": [{"name": b.name, "special_use": b.special_use, "messages": b.messages,
                                         "unread": b.unseen} for b in boxes], "next_cursor": None})

    async def download(request: Any, id: str, n: str) -> Response:
        if not n.isdigit() or len(n) > 6:
            raise HttpError(404, "not_found", "no such attachment")
        _box, _meta, raw = await api.load(request.user.address, id)
        name, ctype, data = await api.registry.run_in_thread(attachment, raw, int(n))
        headers = user_content_headers(ctype, name, inline_ok=False)
        return Response(data, 200, headers.pop("Content-Type"), headers)

    http.route("GET", "/api/mailboxes", mailboxes, scope="mail")
    http.route("GET", "/api/emails/{id}/attachments/{n}", download, scope="mail")
