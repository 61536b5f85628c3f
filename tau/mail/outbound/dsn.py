"""Delivery Status Notifications: ``multipart/report`` (RFC 6522) with a ``message/delivery-status``
part (RFC 3464) — for recipients that failed (Action: failed) or are still being retried after the
delay-warning time (Action: delayed), and success reports (relayed, delivered) a client asked
for with NOTIFY=SUCCESS (RFC 3461; who gets which: ``notify.py``). The third part is the
original's header only (``text/rfc822-headers``), enough for the sender to recognise the message
without mailing the whole body back, or with RET=FULL the whole message (``message/rfc822``).
Sent with the null reverse-path (RFC 5321 §4.5.5) and ``Auto-Submitted`` (RFC 3834) so it can
never cause a bounce loop.
"""

from __future__ import annotations

import email.utils
import re
import uuid

_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_code(code: int, text: str) -> str:
    """RFC 3463 enhanced status from the reply text, else from the basic code's class."""
    m = _STATUS.match(text or "")
    if m:
        return f"{m.group(1)}.{m.group(2)}.{m.group(3)}"
    return f"{str(code)[:1] if code else '4'}.0.0"


def header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    return raw[: end + 2] if end >= 0 else raw


SUBJECTS = {"failed": "Undelivered Mail Returned to Sender", "delayed": "Delayed Mail (still being retried)",
            "relayed": "Successful Mail Delivery Report", "delivered": "Successful Mail Delivery Report"}
HUMAN = {
    "failed": "Your message could not be delivered to one or more recipients.",
    "delayed": "Your message could not be delivered yet to the recipients below. The mail system will keep"
               " trying; you do not need to resend it.",
    "relayed": "Your message was relayed to the recipients' mail system below, which does not return delivery"
               " notifications: this is the last report you will get for them.",
    "delivered": "Your message was delivered to the mailboxes of the recipients below.",
}


def build(hostname: str, sender: str, failures: list[tuple[str, int, str, str]], original_headers: bytes,
          action: str = "failed", arrival: int | None = None, retry_until: int | None = None,
          *, now: float, actions: dict[str, str] | None = None, envid: str | None = None,
          orcpts: dict[str, str] | None = None, full: bool = False) -> bytes:
    """The DSN bytes. ``failures`` = [(recipient, code, text, remote MTA)], each with ``action``
    unless ``actions`` names another for it (one report may mix them, RFC 3464 §2.3.3).
    ``envid``/``orcpts`` are the RFC 3461 ENVID and ORCPTs (xtext, as given); ``full``: the
    original is the whole message (RET=FULL, returned as ``message/rfc822``), else its header."""
    actions = actions or {}
    boundary = f"=_tau_dsn_{uuid.uuid4().hex}"
    date = email.utils.formatdate(now, localtime=False)
    kinds = [actions.get(rcpt, action) for rcpt, *_ in failures] or [action]
    main = next(k for k in ("failed", "delayed", "relayed", "delivered", action) if k in kinds)
    returned = " It is attached below." if full else " It is attached below (headers only)."
    human = (f"This is the mail system at host {hostname}.\r\n\r\n{HUMAN.get(main, HUMAN['failed'])}"
             f"{returned if main == 'failed' else ''}\r\n\r\n")
    lines = [human]
    for rcpt, code, text, _ in failures:
        lines.append(f"<{rcpt}>: {code} {text}\r\n" if code else f"<{rcpt}>: {actions.get(rcpt, action)}\r\n")
    per_rcpt = [_recipient_block(rcpt, code, text, remote, actions.get(rcpt, action), (orcpts or {}).get(rcpt),
                                 date, retry_until) for rcpt, code, text, remote in failures]
    status = [f"Reporting-MTA: dns; {hostname}"]
    if envid:
        status.append(f"Original-Envelope-Id: {envid}")
    if arrival:
        status.append(f"Arrival-Date: {email.utils.formatdate(arrival, localtime=False)}")
    status_part = "\r\n".join(status) + "\r\n\r\n" + "\r\n\r\n".join(per_rcpt) + "\r\n"
    head = (f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
            f"To: <{sender}>\r\n"
            f"Subject: {SUBJECTS.get(main, SUBJECTS['failed'])}\r\n"
            f"Date: {date}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
            "\r\n"
            "This is a MIME-encapsulated message.\r\n\r\n")
    third = ("Content-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n" if full else
             "Content-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n")
    body = (f"--{boundary}\r\n"
            "Content-Description: Notification\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            + "".join(lines) + "\r\n"
            f"--{boundary}\r\n"
            "Content-Description: Delivery report\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            + status_part + "\r\n"
            f"--{boundary}\r\n" + third)
    tail = ("" if original_headers.endswith(b"\r\n") else "\r\n") + f"\r\n--{boundary}--\r\n"
    return head.encode() + body.encode() + original_headers + tail.encode()


def _recipient_block(rcpt: str, code: int, text: str, remote: str, action: str, orcpt: str | None, date: str,
                     retry_until: int | None) -> str:
    """One per-recipient group of RFC 3464 §2.3."""
    block = []
    if orcpt:
        block.append(f"Original-Recipient: {orcpt.replace(';', '; ', 1)}")
    block += [f"Final-Recipient: rfc822; {rcpt}", f"Action: {action}",
              f"Status: {status_code(code, text) if code else '2.0.0'}"]
    if remote:
        block.append(f"Remote-MTA: dns; {remote}")
    if code:
        block.append(f"Diagnostic-Code: smtp; {code} {_one_line(text)}")
    block.append(f"Last-Attempt-Date: {date}")
    if retry_until is not None and action == "delayed":
        block.append(f"Will-Retry-Until: {email.utils.formatdate(retry_until, localtime=False)}")
    return "\r\n".join(block)


def _one_line(text: str) -> str:
    return " ".join((text or "").split())[:900]
