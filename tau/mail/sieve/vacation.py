"""Vacation (RFC 5230) and rejection notices: whether to answer, and the answer's bytes.

Never answered (RFC 5230 §4.5, RFC 3834 §2): a null or MAILER-DAEMON/owner-/-request sender, the
user herself (or one of ``:addresses``), mail with ``Auto-Submitted`` other than ``no``, with
``Precedence: bulk|list|junk``, with ``List-Id`` or any other ``List-*`` header, and mail that does
not name the user (or ``:addresses``) in To/Cc/Bcc/Resent-To/Resent-Cc. A sender gets one answer
per ``:days`` (default 7, at least 1, at most 90) per handle; the store remembers. The answer is
``Auto-Submitted: auto-replied``, ``In-Reply-To``/``References`` the original, sent with the null
envelope sender (RFC 5230 §5.4, RFC 3834 §3.1.x).
"""

from __future__ import annotations

import email.utils
import hashlib
from email.header import Header
from typing import Any

from tau.mail.sieve.interpret import MessageView

DEFAULT_DAYS, MIN_DAYS, MAX_DAYS = 7, 1, 90
_ROBOT_LOCALPARTS = ("mailer-daemon", "postmaster", "listserv", "majordomo", "mailman", "noreply", "no-reply")


def period(request: dict[str, Any]) -> int:
    days = request.get("days")
    days = DEFAULT_DAYS if days is None else min(MAX_DAYS, max(MIN_DAYS, int(days)))
    return days * 86400


def handle(request: dict[str, Any]) -> str:
    """RFC 5230 §4.2: without ``:handle``, the reason, subject, from and mime make the handle."""
    if request.get("handle"):
        return str(request["handle"])[:200]
    basis = "\0".join(str(request.get(k) or "") for k in ("reason", "subject", "from", "mime"))
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def should_answer(message: MessageView, user: str, request: dict[str, Any]) -> bool:
    sender = message.mail_from.lower()
    local = sender.partition("@")[0]
    if not sender or local in _ROBOT_LOCALPARTS or local.startswith("owner-") or local.endswith("-request"):
        return False
    mine = {user.lower(), *(a.lower() for a in request.get("addresses", ()))}
    if sender in mine:
        return False
    if any(v.strip().lower() != "no" for v in message.header("auto-submitted")):
        return False
    if any(v.strip().lower() in ("bulk", "list", "junk") for v in message.header("precedence")):
        return False
    if any(name.lower().startswith("list-") for name, _ in message.headers):
        return False
    named = [a.lower() for _, a in email.utils.getaddresses(
        [v for h in ("to", "cc", "bcc", "resent-to", "resent-cc") for v in message.header(h)])]
    return any(a in mine for a in named)


def _encode(text: str) -> str:
    """One header line: line breaks in a script's subject or from must not add headers."""
    text = " ".join(text.split())[:500]
    return text if text.isascii() else Header(text, "utf-8").encode()


def reply(message: MessageView, user: str, request: dict[str, Any], hostname: str) -> bytes:
    """The RFC 3834 answer to ``message`` for ``user``."""
    original = (message.header("subject") or [""])[0]
    subject = request.get("subject") or f"Auto: {original}".strip()
    sender = request.get("from") or user
    message_id = (message.header("message-id") or [""])[0].strip()
    references = " ".join(v.strip() for v in message.header("references"))
    lines = [
        f"From: {_encode(sender)}",
        f"To: <{message.mail_from}>",
        f"Subject: {_encode(subject)}",
        f"Date: {email.utils.formatdate(message.now)}",
        f"Message-ID: {email.utils.make_msgid('vacation', domain=hostname)}",
        "Auto-Submitted: auto-replied (vacation)",
        "Precedence: bulk",
        "X-Auto-Response-Suppress: All",          # Exchange and Outlook: no answer to the answer
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    if message_id:
        lines.append(f"In-Reply-To: {message_id}")
        lines.append(f"References: {(references + ' ' + message_id).strip()}")
    body = str(request.get("reason", "")).replace("\r\n", "\n").replace("\n", "\r\n")
    if not body.endswith("\r\n"):
        body += "\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def rejection(message: MessageView, user: str, reason: str, hostname: str) -> bytes:
    """RFC 5429 §2.1 ``reject`` after the message was accepted: a notice to the envelope sender."""
    original = (message.header("subject") or [""])[0]
    text = (f"Your message to <{user}> was rejected by the recipient's filter.\r\n\r\n"
            f"Subject: {original}\r\nReason: {reason}\r\n")
    head = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{message.mail_from}>",
        f"Subject: {_encode('Rejected: ' + original)}",
        f"Date: {email.utils.formatdate(message.now)}",
        f"Message-ID: {email.utils.make_msgid('reject', domain=hostname)}",
        "Auto-Submitted: auto-replied (rejected)",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    return ("\r\n".join(head) + "\r\n\r\n" + text).encode("utf-8")
