"""Delivery Status Notifications: ``multipart/report`` (RFC 6522) with a ``message/delivery-status``
part (RFC 3464) — for recipients that failed (Action: failed) or are still being retried after the
delay-warning time (Action: delayed). The third part is the original's header only
(``text/rfc822-headers``), enough for the sender to recognise the message without mailing the
whole body back. Sent with the null reverse-path (RFC 5321 §4.5.5) and ``Auto-Submitted``
(RFC 3834) so it can never cause a bounce loop.
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


def build(hostname: str, sender: str, failures: list[tuple[str, int, str, str]], original_headers: bytes,
          action: str = "failed", arrival: int | None = None, retry_until: int | None = None,
          *, now: float) -> bytes:
    """The DSN bytes. ``failures`` = [(recipient, code, text, remote MTA)]."""
    boundary = f"=_tau_dsn_{uuid.uuid4().hex}"
    date = email.utils.formatdate(now, localtime=False)
    if action == "failed":
        subject = "Undelivered Mail Returned to Sender"
        human = ("This is the mail system at host {host}.\r\n\r\nYour message could not be delivered to one or"
                 " more recipients. It is attached below (headers only).\r\n\r\n")
    else:
        subject = "Delayed Mail (still being retried)"
        human = ("This is the mail system at host {host}.\r\n\r\nYour message could not be delivered yet to the"
                 " recipients below. The mail system will keep trying; you do not need to resend it.\r\n\r\n")
    lines = [human.format(host=hostname)]
    for rcpt, code, text, _ in failures:
        lines.append(f"<{rcpt}>: {code} {text}\r\n")
    per_rcpt = []
    for rcpt, code, text, remote in failures:
        block = [f"Final-Recipient: rfc822; {rcpt}", f"Action: {action}",
                 f"Status: {status_code(code, text)}"]
        if remote:
            block.append(f"Remote-MTA: dns; {remote}")
        if code:
            block.append(f"Diagnostic-Code: smtp; {code} {_one_line(text)}")
        block.append(f"Last-Attempt-Date: {date}")
        if retry_until is not None and action == "delayed":
            block.append(f"Will-Retry-Until: {email.utils.formatdate(retry_until, localtime=False)}")
        per_rcpt.append("\r\n".join(block))
    status = [f"Reporting-MTA: dns; {hostname}"]
    if arrival:
        status.append(f"Arrival-Date: {email.utils.formatdate(arrival, localtime=False)}")
    status_part = "\r\n".join(status) + "\r\n\r\n" + "\r\n\r\n".join(per_rcpt) + "\r\n"
    head = (f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
            f"To: <{sender}>\r\n"
            f"Subject: {subject}\r\n"
            f"Date: {date}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{hostname}>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            f"Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n"
            "\r\n"
            "This is a MIME-encapsulated message.\r\n\r\n")
    body = (f"--{boundary}\r\n"
            "Content-Description: Notification\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            + "".join(lines) + "\r\n"
            f"--{boundary}\r\n"
            "Content-Description: Delivery report\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            + status_part + "\r\n"
            f"--{boundary}\r\n"
            "Content-Description: Undelivered Message Headers\r\n"
            "Content-Type: text/rfc822-headers\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n"
    return head.encode() + body.encode() + original_headers + tail.encode()


def _one_line(text: str) -> str:
    return " ".join((text or "").split())[:900]
