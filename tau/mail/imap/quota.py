"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA (refused).

Every user has one quota root, ``""``, covering all of their mailboxes; its one resource is
STORAGE (``QUOTA=RES-STORAGE``), the limit ``[limits] quota_bytes`` or the user's own (see
``tau.mail.store.quota``), the usage the same counter the store enforces on delivery, APPEND,
COPY. Both are in units of 1024 octets (§5.1): usage rounded up, the limit rounded down, so a
client never believes there is room that is not there. A user without a limit has no quota root
(``* QUOTAROOT INBOX`` alone, RFC 9208 §4.1.2). The limit is set by the operator, never over
IMAP: SETQUOTA is ``NO [NOPERM]``. A message that would take usage past the limit is refused with
``NO [OVERQUOTA]`` (``base.store_error``).
"""

from __future__ import annotations

from typing import Any

from .base import AUTHED, SYNC_NONE, No, command
from .mailboxes import lookup
from .parser import Parser
from .response import mailbox_name, quote

ROOT = ""
CAPABILITIES = "QUOTA QUOTA=RES-STORAGE"


def storage_line(detail: dict[str, int]) -> str:
    used_k = (detail["bytes"] + 1023) // 1024
    return f"QUOTA {quote(ROOT)} (STORAGE {used_k} {detail['quota'] // 1024})"


@command("GETQUOTAROOT", AUTHED, SYNC_NONE)
async def do_getquotaroot(conn: Any, tag: str, p: Parser) -> str:
    name = p.mailbox()
    p.end()
    info = await lookup(conn, name)
    detail = await conn.store.usage_detail(conn.user)
    if not detail["quota"]:
        conn.untagged(f"QUOTAROOT {mailbox_name(info.name)}")
    else:
        conn.untagged(f"QUOTAROOT {mailbox_name(info.name)} {quote(ROOT)}", storage_line(detail))
    return "Getquotaroot completed"


@command("GETQUOTA", AUTHED, SYNC_NONE)
async def do_getquota(conn: Any, tag: str, p: Parser) -> str:
    root = p.astring().decode("utf-8", "replace")
    p.end()
    detail = await conn.store.usage_detail(conn.user) if root == ROOT else None
    if detail is None or not detail["quota"]:
        raise No("No such quota root", "NONEXISTENT")
    conn.untagged(storage_line(detail))
    return "Getquota completed"


@command("SETQUOTA", AUTHED, SYNC_NONE)
async def do_setquota(conn: Any, tag: str, p: Parser) -> str:
    p.astring()
    p.sp()
    p.expect(b"(")
    while not p.take(b")"):
        p.keyword()
        p.sp()
        p.number()
        p.take(b" ")
    p.end()
    raise No("Quotas are set by the administrator", "NOPERM")
