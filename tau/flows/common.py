"""What every mail flow needs: the caller's message, parsed once, and its local correspondents.

The flows call the other packages' domain objects directly (mail store, file tree, calendars,
calls, messenger) rather than their REST endpoints, so a flow is one transaction per service and
answers with the same errors those services give.
"""

from __future__ import annotations

import email
import email.policy
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from tau.auth import accounts
from tau.http.errors import HttpError
from tau.mail.errors import MailError

if TYPE_CHECKING:
    from tau.registry import Registry


@dataclass
class Mail:
    id: str
    raw: bytes
    msg: EmailMessage
    subject: str
    sender: str
    #: every address in From, To and Cc, lower case, in order, without duplicates
    people: list[str] = field(default_factory=list)


def parse(message_id: str, raw: bytes) -> Mail:
    from tau.mail.mime.view import is_ordinary

    if not is_ordinary(raw):  # 100,000 parts took minutes, 10,000 levels a RecursionError (a 500)
        raise HttpError(422, "message_too_complex", "the message has too many parts or too deep a nesting")
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    people: list[str] = []
    for header in ("from", "to", "cc"):
        for _, addr in getaddresses([str(v) for v in msg.get_all(header, [])]):
            addr = addr.strip().lower()
            if "@" in addr and addr not in people:
                people.append(addr)
    sender = people[0] if people else ""
    return Mail(message_id, raw, msg, str(msg.get("subject", "") or ""), sender, people)


async def load(registry: Registry, store: Any, user: Any, message_id: str) -> Mail:
    """The caller's message ``MAILBOXID.UID``; 404 for another user's (the mail API's rule)."""
    from tau.mail.api import parse_id

    mailbox_id, uid = parse_id(message_id)
    box = await store.get_mailbox_by_id(user.address, mailbox_id)
    metas = await store.fetch(mailbox_id, [uid], True, user=user.address) if box is not None else []
    if not metas:
        raise HttpError(404, "not_found", "no such message")
    raw = await store.read(metas[0].blob_key)
    return await registry.run_in_thread(parse, message_id, raw)


async def local_users(registry: Registry, addresses: list[str], exclude: str) -> list[str]:
    """The addresses that are accounts here (other correspondents cannot chat or be rung)."""
    wanted = [a for a in addresses if a != exclude.lower()]
    if not wanted:
        return []

    found = await registry.db.run("flows_local_users", accounts.existing_addresses, wanted, readonly=True)
    return [a for a in wanted if a in found]


def refuse(exc: Exception) -> HttpError:
    """A domain error (CallError, MessengerError, FilesError, CalendarError, MailError) as the API error."""
    status = getattr(exc, "status", 400)
    code = getattr(exc, "code", "invalid_request")
    extra = exc.extra if isinstance(exc, MailError) else None
    return HttpError(int(status) if isinstance(status, int) else 400, str(code), str(exc), extra=extra)
