"""What mail's domain raises when it refuses a message; the HTTP edge (``tau.mail.api``) answers
each with its ``status`` and ``code``, as the messenger does with ``MessengerError``.

Why not ``HttpError``: the flows send mail internally and SMTP may one day share this path; the
domain says *what* was refused, each protocol says it in its own words.
"""

from __future__ import annotations

from typing import Any


class MailError(Exception):
    """A refused message: HTTP-like ``status``, snake_case ``code`` and ``extra`` fields for the answer."""

    status = 400

    def __init__(self, code: str, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra


class InvalidMessage(MailError):
    """The draft itself is wrong: addresses, recipients, attachments, keys to encrypt or sign."""


class SenderNotAllowed(MailError):
    """``from`` names an address the user may not send as."""

    status = 403


class KeyLocked(MailError):
    """The private key needs another passphrase."""

    status = 403


class AttachmentNotFound(MailError):
    """A ``file_id`` the user cannot read (or that does not exist: the same answer)."""

    status = 404


class MessageTooLarge(MailError):
    """Over the message size limit, or over the sender's quota."""

    status = 413
