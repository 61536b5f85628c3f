"""STATUS ``DELETED`` and ``DELETED-STORAGE`` (RFC 9208 §4.2; DELETED also RFC 9051 §6.3.11): how
many messages are flagged ``\\Deleted`` and how much storage, in units of 1024 octets rounded
up, EXPUNGE would free; and ``APPENDLIMIT`` (RFC 7889 §4), the same ``[limits] message_size``
for every mailbox. Asked for in STATUS only (one indexed query per mailbox); LIST RETURN
(STATUS ...) does not take them."""

from __future__ import annotations

from typing import Any

from tau.mail.store.api import MailboxInfo

STATUS_ITEMS = ("DELETED", "DELETED-STORAGE", "APPENDLIMIT")


async def status_values(conn: Any, info: MailboxInfo, items: list[str]) -> dict[str, int]:
    values = {"APPENDLIMIT": int(conn.registry.config.limits.message_size or 0)}
    if "DELETED" not in items and "DELETED-STORAGE" not in items:
        return values
    count, octets = await conn.store.deleted_usage(info.id, user=conn.user)
    return values | {"DELETED": count, "DELETED-STORAGE": (octets + 1023) // 1024}
