"""``GET /api/emails?thread=ID``: the conversation a message belongs to, for the webmail's thread view.

The server's own threading (RFC 5256 THREAD=REFERENCES, the same ``store.thread`` IMAP's
``UID THREAD`` answers from, cached per mailbox state) groups the message's mailbox; the answer is
the top-level thread holding ``ID``, in thread order (parents before replies, siblings by sent
date), as ordinary list items. The whole thread fits one page: no cursor.
"""

from __future__ import annotations

from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response
from tau.mail.store import Search
from tau.mail.store.threading import CLOSE, OPEN

MAX_THREAD = 500


def thread_of(flat: list[int], uid: int) -> list[int]:
    """The UIDs of the top-level thread of ``flat`` (``threading.flatten`` form) holding ``uid``."""
    depth, current = 0, []
    for item in flat:
        if item == OPEN:
            depth += 1
        elif item == CLOSE:
            depth -= 1
            if depth == 0:
                if uid in current:
                    return current
                current = []
        else:
            current.append(item)
    return [uid]


async def list_thread(api: Any, request: Any, message_id: str) -> Response:
    user = request.user.address
    box, meta = await api._message(user, message_id)
    flat = await api.store.thread(box.id, Search(("all",)), "references", user=user)
    uids = thread_of(flat, meta.uid)[:MAX_THREAD]
    if meta.uid not in uids:
        raise HttpError(404, "not_found", "no such message")
    metas = {m.uid: m for m in await api.store.fetch(box.id, uids, True, user=user)}
    items = [api._item(box, metas[u]) for u in uids if u in metas]
    return json_response({"items": items, "next_cursor": None, "thread": message_id})
