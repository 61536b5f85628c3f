"""STATUS ``DELETED`` and ``DELETED-STORAGE`` (RFC 9208 §4.2; DELETED also RFC 9051 §6.3.11): how
many messages are flagged ``\\Deleted`` and how much storage, in units of 1024 octets rounded
up, EXPUNGE would free. Asked for in STATUS only (one indexed query per mailbox); LIST RETURN
(STATUS ...) does not take them."""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailboxInfo

STATUS_ITEMS = ("DELETED", "DELETED-STORAGE")


async def status_values(conn: Any, info: MailboxInfo, items: list[str]) -> dict[str, int]:
    if not any(i in STATUS_ITEMS for i in items):
        return {}
    count, octets = await conn.store.deleted_usage(info.id, user=conn.user)
    return {"DELETED": count, "DELETED-STORAGE": (octets + 1023) // 1024}
