"""``MailStore`` methods for IMAP's mailbox keywords and \\Recent (keywords.py, recent.py)."""

from __future__ import annotations

from typing import Any

from tau.mail.store import keywords, recent


class SessionFlagsMixin:
    """Mixed into ``MailStore``; uses its ``_run``."""

    _run: Any

    async def keywords(self, mailbox_id: int, *, user: str | None = None) -> list[str]:
        """Extension: the keywords defined in the mailbox (IMAP FLAGS / PERMANENTFLAGS)."""
        return await self._run("mail_keywords", keywords.keywords, mailbox_id, user, readonly=True)

    async def claim_recent(self, mailbox_id: int, upto: int) -> int:
        """Extension: claim \\Recent for UIDs below ``upto`` (see recent.py); returns the first
        claimed UID (``upto`` when none)."""
        return await self._run("mail_claim_recent", recent.claim, mailbox_id, upto)

    async def recent_count(self, mailbox_id: int, *, user: str | None = None) -> int:
        """Extension: recent messages no session has claimed yet (STATUS RECENT)."""
        return await self._run("mail_recent_count", recent.unclaimed, mailbox_id, user, readonly=True)
