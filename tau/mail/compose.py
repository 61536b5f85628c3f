"""Build and send a message for ``POST /api/emails`` (RFC 5322, MIME RFC 2045-2049, RFC 6409 §8).

The message is built with the standard library's ``email`` package (text and/or HTML as
``multipart/alternative``, attachments as ``multipart/mixed``), optionally signed/encrypted with
OpenPGP (``tau.mail.pgp``) or S/MIME (``tau.mail.smime``; ``tau.mail.smime_send`` chooses), written
to the blob store once and then, in ONE transaction: local recipients get it in their INBOX,
remote ones go into the outbound queue, and the sender gets the Sent copy — exactly what SMTP
submission does, so IMAP sees the same result either way.
Bcc recipients get the message but the header is not transmitted (RFC 5322 §3.6.3).
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import email.utils
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any, Protocol

from tau.mail.errors import AttachmentNotFound, InvalidMessage, MessageTooLarge, SenderNotAllowed

if TYPE_CHECKING:
    from tau.registry import Registry

MAX_RECIPIENTS = 100


@dataclass
class Draft:
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    text: str | None
    html: str | None
    attachments: list[AttachmentInput] = field(default_factory=list)
    encrypt: bool = False
    sign: bool = False
    passphrase: str | None = None
    sender: str | None = None          # "from": another address the user may send as (send-as)
    crypto: str | None = None          # "pgp" | "smime" | None: which protects sign/encrypt (smime_send)
    in_reply_to: str | None = None     # a reply's parent <msg-id> (RFC 5322 §3.6.4), checked by the API
    references: list[str] = field(default_factory=list)

    @property
    def recipients(self) -> list[str]:
        return list(dict.fromkeys(a.lower() for a in self.to + self.cc + self.bcc))


def valid_address(value: str) -> str | None:
    """The bare address in ``value`` (a name may surround it), or None when it is not one."""
    if any(c in value for c in "\r\n\0") or len(value) > 320:
        return None
    _, addr = email.utils.parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or "." not in domain or any(c in addr for c in "\r\n<>,;\0 "):
        return None
    return addr


def check(draft: Draft) -> None:
    """What every draft must be, however it was made (the API's parser refuses the same earlier)."""
    for addr in draft.to + draft.cc + draft.bcc + ([draft.sender] if draft.sender else []):
        if valid_address(addr) != addr:
            raise InvalidMessage("invalid_address", f"not a mail address: {addr[:100]!r}")
    if not draft.recipients:
        raise InvalidMessage("no_recipients", "give at least one address in to, cc or bcc")
    if any(c in draft.subject for c in "\r\n\0"):
        raise InvalidMessage("invalid_request", "subject must be one line")
    if len(draft.recipients) > MAX_RECIPIENTS:
        raise InvalidMessage("too_many_recipients", f"at most {MAX_RECIPIENTS} recipients")
    if draft.crypto not in (None, "pgp", "smime"):
        raise InvalidMessage("invalid_request", 'crypto must be "pgp" or "smime"')


#: ``AttachmentInput`` fields the sender did not give (``None`` is a value a JSON body can give)
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()


@dataclass
class AttachmentInput:
    """One attachment as the sender gave it: ``data`` (bytes), ``base64`` text still to decode, or a
    TauCloud ``file_id``; checked by ``attachment_source`` (after the send-as check, as always)."""

    filename: Any = None
    content_type: Any = None
    data: bytes | None = None
    base64: Any = ABSENT
    file_id: Any = ABSENT


@dataclass
class Attachment:
    """One attachment of a draft: bytes given inline, or a TauCloud file not read yet (``node``).

    Holding a cloud file by reference lets ``[flows] attachment_link_threshold`` link a big file
    without ever reading it (``tau.flows.attach_links``); otherwise ``read_attachment`` loads it.
    """

    filename: str
    content_type: str
    data: bytes | None = None
    node: Any = None

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else int(self.node.size)


@dataclass
class Link:
    """An attachment replaced by a link: sent as an inline text/plain part with ``text``."""

    filename: str
    text: str


async def attachment_source(registry: Registry, user: Any, item: AttachmentInput) -> Attachment:
    """Validate one attachment: inline bytes or base64 (decoded), or a TauCloud file id (located, not read)."""
    filename = item.filename
    ctype = item.content_type or "application/octet-stream"
    if not isinstance(ctype, str) or ctype.count("/") != 1 or any(c in ctype for c in "\r\n;\0 "):
        raise InvalidMessage("invalid_attachment", "content_type must be type/subtype")
    data: bytes | None = item.data
    node: Any = None
    if data is not None:
        pass
    elif item.base64 is not ABSENT:
        try:
            data = base64.b64decode(item.base64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise InvalidMessage("invalid_attachment", "content_base64 is not base64")
    elif item.file_id is not ABSENT:
        node = await _file_node(registry, user, item.file_id)
        filename = filename or node.name
        ctype = item.content_type or node.content_type or ctype
    else:
        raise InvalidMessage("invalid_attachment", "each attachment needs content_base64 or file_id")
    if not isinstance(filename, str) or not filename or any(c in filename for c in "\r\n\0/\\"):
        raise InvalidMessage("invalid_attachment", "each attachment needs a plain filename")
    return Attachment(filename, ctype, data, node)


async def read_attachment(registry: Registry, att: Attachment) -> tuple[str, str, bytes]:
    """(filename, content type, bytes): a cloud file is read here, within the message size limit."""
    if att.data is not None:
        return att.filename, att.content_type, att.data
    if att.node.size > registry.config.limits.message_size:
        raise MessageTooLarge("payload_too_large", "the file is larger than the message size limit")
    return att.filename, att.content_type, await registry.blobs.read(att.node.blob_key)


async def attachment_bytes(registry: Registry, user: Any, item: AttachmentInput) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) of one attachment: inline base64 or a TauCloud file id."""
    return await read_attachment(registry, await attachment_source(registry, user, item))


class FileSource(Protocol):
    """What mail needs of TauCloud to attach a stored file; ``tau.files.service`` installs one as
    ``registry.attachment_files`` (mail does not import files)."""

    async def readable_file(self, user: Any, file_id: int) -> Any:
        """The file node (``name``, ``content_type``, ``size``, ``blob_key``) ``user`` may read, or None."""


async def _file_node(registry: Registry, user: Any, file_id: Any) -> Any:
    """A TauCloud file the user may read (its own tree or a share), by id."""
    files: FileSource | None = registry.attachment_files
    if files is None:
        raise InvalidMessage("file_attachments_unavailable", "file attachments need TauCloud (tau.files)")
    if not isinstance(file_id, (str, int)) or not str(file_id).isdigit():
        raise InvalidMessage("invalid_attachment", "file_id must be a file id")
    node = await files.readable_file(user, int(file_id))
    if node is None:
        raise AttachmentNotFound("file_not_found", f"no file {file_id}")
    return node


Files = list[tuple[str, str, bytes] | Link]


def build(sender: str, draft: Draft, files: Files, hostname: str,
          extra_headers: list[tuple[str, str]] | None = None) -> EmailMessage:
    """The MIME message (without Bcc), ready for signing/encryption."""
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    if draft.to:
        msg["To"] = ", ".join(draft.to)
    if draft.cc:
        msg["Cc"] = ", ".join(draft.cc)
    msg["Subject"] = draft.subject
    msg["Date"] = email.utils.formatdate(localtime=False)
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@{sender.rpartition('@')[2] or hostname}>"
    msg["MIME-Version"] = "1.0"
    if draft.in_reply_to:
        msg["In-Reply-To"] = draft.in_reply_to
    if draft.references:
        msg["References"] = " ".join(draft.references)
    for name, value in extra_headers or []:
        msg[name] = value
    body_part = content_part(draft, files)
    for name, value in body_part.items():
        if name.lower() not in ("mime-version",):
            msg[name] = value
    msg.set_payload(body_part.get_payload())
    return msg


def content_part(draft: Draft, files: Files) -> EmailMessage:
    """The body entity (what PGP/MIME signs or encrypts): text/html alternatives plus attachments
    (a ``Link`` as an inline text part, so it is signed and encrypted like the rest)."""
    part = EmailMessage(policy=email.policy.SMTP)
    if draft.html is not None:
        part.set_content(draft.text if draft.text is not None else "")
        part.add_alternative(draft.html, subtype="html")
    else:
        part.set_content(draft.text or "")
    for entry in files:
        if isinstance(entry, Link):
            part.add_attachment(entry.text, subtype="plain", cte="quoted-printable", disposition="inline")
            continue
        filename, ctype, data = entry
        maintype, subtype = ctype.split("/")
        part.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return part


def as_bytes(msg: EmailMessage) -> bytes:
    raw = msg.as_bytes(policy=email.policy.SMTP)
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"


def send_txn(txn: Any, ctx: Any, sender: str, recipients: list[str], key: str, size: int, fields: Any,
             message_id: str | None, mail_from: str | None = None, local_delivery: Any = None) -> Any:
    """Local delivery + outbound queue + Sent copy in one transaction; returns the Sent Delivered.
    ``sender`` is the user; ``mail_from`` the From they chose (checked here, in the same
    transaction: their own address, an alias of theirs or a send-as grant, else 403).
    ``local_delivery(txn, local)``, when given, stores the local copies instead (the recipients'
    Sieve filters: ``tau.mail.sieve.commit``)."""
    from tau.auth import accounts
    from tau.mail.store import messages, queue

    mail_from = mail_from or sender
    if mail_from != sender:
        user = accounts.get_user(txn, sender)
        if user is None or not accounts.user_may_send_as(txn, user, mail_from):
            raise SenderNotAllowed("sender_not_allowed", f"{sender} may not send as {mail_from}"
                                   " (tau user send-as add)")

    local: list[str] = []
    remote: list[str] = []
    unknown: list[str] = []
    for rcpt in recipients:
        domain = rcpt.rpartition("@")[2]
        if not accounts.is_local_domain(txn, domain):
            remote.append(rcpt)
            continue
        targets = accounts.resolve_recipient(txn, rcpt)
        if not targets:
            unknown.append(rcpt)
        for t in targets:
            (local if accounts.is_local_domain(txn, t.rpartition("@")[2]) else remote).append(t)
    if unknown:
        raise InvalidMessage("unknown_recipient", "no such local recipient: " + ", ".join(unknown),
                             extra={"recipients": unknown})
    local, remote = sorted(set(local)), list(dict.fromkeys(remote))
    if local and local_delivery is not None:
        local_delivery(txn, local)
    elif local:
        messages.deliver(txn, ctx, local, key, size, fields, "INBOX", (), None, None,
                         {"via": "submission", "user": sender})
    if remote:
        queue.enqueue(txn, sender, mail_from, remote, key, size, message_id, ctx)
    [sent] = messages.deliver(txn, ctx, [sender], key, size, fields, "Sent", ("\\Seen",), None, None)
    return sent
