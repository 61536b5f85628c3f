"""``GET /api/emails?thread=ID``: the conversation a message belongs to, for the webmail's thread view.

The server's own threading (RFC 5256 THREAD=REFERENCES, the same ``store.thread`` IMAP's
``UID THREAD`` answers from) groups the message's mailbox; the answer is
the top-level thread holding ``ID`` as ordinary list items, with the user's own side of it from
Sent (messages that reply to one of the thread's, or that one of them replies to: a conversation
shows both sides), in the order they were written (sent date; ties keep thread order: parents
before replies). One page, no cursor: at most 500 messages (a runaway thread: those around ``ID``).

Opening a message marks it read, which moves the store's SORT/THREAD cache key (its modseq) and
would re-thread the whole folder at every open (~300 ms for 10,000 messages on a loaded machine).
Threads depend only on which messages are there, so ``ThreadCache`` keys them by the message
set: UIDVALIDITY, UIDNEXT (every append moves it) and the message count (every expunge).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from tau.http.errors import HttpError
from tau.http.router import Response, json_response
from tau.mail.mime import from_json
from tau.mail.store import Search
from tau.mail.store.threading import CLOSE, OPEN

MAX_THREAD = 500
MAX_IDS = 100   # message ids asked of Sent: the thread's latest


class ThreadCache:
    """The flattened threads of recent message sets (one per process; plain dict operations)."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self.flat: OrderedDict[tuple[int, ...], list[int]] = OrderedDict()

    async def get(self, store: Any, box: Any, user: str) -> list[int]:
        key = (box.id, box.uidvalidity, box.uidnext, box.messages)
        found = self.flat.get(key)
        if found is None:
            found = self.flat[key] = await store.thread(box.id, Search(("all",)), "references", user=user)
            while len(self.flat) > self.size:
                self.flat.popitem(last=False)
        return found


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
    flat = await api.threads.get(api.store, box, user)
    uids = thread_of(flat, meta.uid)
    if meta.uid not in uids:
        raise HttpError(404, "not_found", "no such message")
    if len(uids) > MAX_THREAD:  # a runaway thread: the messages around the one asked for
        start = max(0, min(uids.index(meta.uid) - MAX_THREAD // 2, len(uids) - MAX_THREAD))
        uids = uids[start:start + MAX_THREAD]
    metas = {m.uid: m for m in await api.store.fetch(box.id, uids, True, user=user)}
    ordered = [metas[u] for u in uids if u in metas]
    items = [api._item(box, m) for m in ordered] + await _own_side(api, user, box, ordered)
    items.sort(key=lambda item: item["date"] or "")
    return json_response({"items": items, "next_cursor": None, "thread": message_id})


async def _own_side(api: Any, user: str, box: Any, metas: list[Any]) -> list[dict[str, Any]]:
    """The user's messages in Sent that answer the thread's messages or that they answer."""
    if box.special_use == "\\Sent":
        return []
    sent = next((b for b in await api.store.list_mailboxes(user) if b.special_use == "\\Sent"), None)
    parsed = [from_json(m.parsed_json) for m in metas]
    ids = list(dict.fromkeys(i for p in reversed(parsed) for i in (p.message_id, p.in_reply_to) if i))[:MAX_IDS]
    if sent is None or not ids:
        return []
    terms = [("header", name, i) for i in ids for name in ("message-id", "in-reply-to")]
    uids = sorted(await api.store.search(sent.id, Search(("or", *terms)), user=user))[-MAX_THREAD:]
    found = await api.store.fetch(sent.id, uids, True, user=user) if uids else []
    return [api._item(sent, m) for m in sorted(found, key=lambda m: m.uid)]
