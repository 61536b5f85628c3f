"""``MailStore`` methods for IMAP's mailbox keywords and \\Recent (keywords.py, recent.py)."""

from __future__ import annotations

from typing import Any

from tau.mail.store import recent
from tau.mail.store.quota import find_account
from tau.storage.database import Txn


class SessionFlagsMixin:
    """Mixed into ``MailStore``; uses its ``_run``."""

    _run: Any
    ctx: Any

    async def select_state(self, mailbox_id: int, *, user: str | None = None) -> tuple[list[str], int]:
        """Extension: (keywords, recent mark) in one read for IMAP SELECT: messages with a UID at
        or above the mark are recent and unclaimed."""
        return await self._run("mail_select_state", recent.select_state, mailbox_id, user, readonly=True)

    async def claim_recent(self, mailbox_id: int, upto: int) -> int:
        """Extension: claim \\Recent for UIDs below ``upto`` (see recent.py); returns the first
        claimed UID (``upto`` when none). A read-only look first: most SELECTs find nothing to
        claim and need not queue for the write lock."""
        mark = await self._run("mail_recent_mark", recent.mark, mailbox_id, readonly=True)
        if mark is None or mark >= upto:
            return upto
        return await self._run("mail_claim_recent", recent.claim, mailbox_id, upto)

    async def recent_count(self, mailbox_id: int, *, user: str | None = None) -> int:
        """Extension: recent messages no session has claimed yet (STATUS RECENT)."""
        return await self._run("mail_recent_count", recent.unclaimed, mailbox_id, user, readonly=True)

    async def recent_counts(self, user: str) -> dict[int, int]:
        """Extension: mailbox id → recent messages no session has claimed, for every mailbox of
        ``user`` that has some (LIST-STATUS RECENT)."""
        return await self._run("mail_recent_counts", _recent_counts, user, self.ctx.default_quota, readonly=True)


def _recent_counts(txn: Txn, user: str, default_quota: int) -> dict[int, int]:
    acct = find_account(txn, user, default_quota)
    return recent.unclaimed_by_mailbox(txn, acct.id) if acct is not None else {}
