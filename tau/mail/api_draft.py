"""``POST /api/emails``'s JSON body → a ``compose.Draft``: the HTTP layer's half of sending.

Shapes and types are checked here, in the order and with the answers the API always gave; what
every draft must satisfy however it was made (addresses, recipient count) is ``compose.check``,
and attachments are validated by the domain after the send-as check, as before.
"""

from __future__ import annotations

import re
from typing import Any

from tau.http.errors import HttpError
from tau.mail.compose import ABSENT, MAX_RECIPIENTS, AttachmentInput, Draft, valid_address


def _addresses(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise HttpError(400, "invalid_request", f"{key} must be a list of addresses")
    out = []
    for v in value:
        addr = valid_address(v)
        if addr is None:
            shown = v[:100] if any(c in v for c in "\r\n\0") or len(v) > 320 else v
            raise HttpError(400, "invalid_address", f"not a mail address: {shown!r}")
        out.append(addr)
    return out


def attachment_input(item: dict[str, Any]) -> AttachmentInput:
    return AttachmentInput(item.get("filename"), item.get("content_type"), None,
                           item.get("content_base64", ABSENT), item.get("file_id", ABSENT))


_MSG_ID = re.compile(r"^<[^<>\s\x00-\x1f\x7f]{1,250}>$")
MAX_REFERENCES = 50


def thread_headers(body: dict[str, Any]) -> tuple[str | None, list[str]]:
    """``in_reply_to`` (one ``<msg-id>``) and ``references`` (a list of them, oldest first): what
    makes a reply join its conversation in every client's threading (RFC 5322 §3.6.4)."""
    parent, refs = body.get("in_reply_to"), body.get("references") or []
    if parent is not None and (not isinstance(parent, str) or not _MSG_ID.match(parent)):
        raise HttpError(400, "invalid_request", "in_reply_to must be one <msg-id>")
    if (not isinstance(refs, list) or len(refs) > MAX_REFERENCES
            or not all(isinstance(r, str) and _MSG_ID.match(r) for r in refs)):
        raise HttpError(400, "invalid_request", f"references must be a list of at most {MAX_REFERENCES} <msg-id>s")
    return parent, list(refs)


def parse_draft(body: dict[str, Any]) -> Draft:
    to, cc, bcc = _addresses(body, "to"), _addresses(body, "cc"), _addresses(body, "bcc")
    if not (to or cc or bcc):
        raise HttpError(400, "no_recipients", "give at least one address in to, cc or bcc")
    subject = body.get("subject", "")
    text, html = body.get("text"), body.get("html")
    for name, value in (("subject", subject), ("text", text), ("html", html)):
        if value is not None and not isinstance(value, str):
            raise HttpError(400, "invalid_request", f"{name} must be a string")
    if any(c in subject for c in "\r\n\0"):
        raise HttpError(400, "invalid_request", "subject must be one line")
    attachments = body.get("attachments") or []
    if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
        raise HttpError(400, "invalid_request", "attachments must be a list of objects")
    for flag in ("encrypt", "sign"):
        if not isinstance(body.get(flag, False), bool):
            raise HttpError(400, "invalid_request", f"{flag} must be true or false")
    passphrase = body.get("passphrase")
    if passphrase is not None and not isinstance(passphrase, str):
        raise HttpError(400, "invalid_request", "passphrase must be a string")
    crypto = body.get("crypto")
    if crypto not in (None, "pgp", "smime"):
        raise HttpError(400, "invalid_request", 'crypto must be "pgp" or "smime"')
    sender = None
    if body.get("from") is not None:
        if not isinstance(body["from"], str):
            raise HttpError(400, "invalid_request", "from must be one address")
        sender = _addresses(body, "from")[0].lower()
    draft = Draft(to, cc, bcc, subject, text, html, [attachment_input(a) for a in attachments],
                  body.get("encrypt", False), body.get("sign", False), passphrase, sender, crypto,
                  *thread_headers(body))
    if len(draft.recipients) > MAX_RECIPIENTS:
        raise HttpError(400, "too_many_recipients", f"at most {MAX_RECIPIENTS} recipients")
    return draft
