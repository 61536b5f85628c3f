"""One message in flight: streamed into the blob store as it arrives, committed before the 250.

RFC 5321 §4.1.1.4 and §6.1: once the server answers 250 to the end of data it owns the message,
so the reply waits until the blob is committed (fsynced and renamed by the blob store) and the
database rows are committed by the mail store. Anything that ends the transfer early (client
gone, size exceeded) aborts the blob writer, so no partial blob remains.

Memory: a message of at most ``HOLD_LIMIT`` bytes is only held, and stored once at the end
(after the inbound checks put their headers in front: one blob per message, not a first copy
and a rewritten one); a bigger one streams into a blob writer from the moment it outgrows the
hold and is read back for parsing in a worker thread, so during the transfer no more than
``HOLD_LIMIT`` plus one blob chunk is held per connection.
On submission, attachments over ``[flows] attachment_link_threshold`` are first moved to the
sender's files by a streaming rewrite of the blob (``tau.flows.attach_links``); what is parsed
and stored is then the small rewritten message.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from tau.mail.mime import parse_message
from tau.mail.senders import HeaderCapture
from tau.mail.smtp.delivery import Delivery, Envelope
from tau.mail.smtp.syntax import Reply, sanitize

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()

HOLD_LIMIT = 4 * 1024 * 1024      # bytes kept in memory for parsing; above: read back from the blob
THREAD_PARSE = 256 * 1024         # parse messages above this size off the reactor thread


def trace_headers(*, host: str, helo: str, ip: str, protocol: str, queue_id: str,
                  recipients: Sequence[str], return_path: str | None, when: float) -> bytes:
    """``Return-Path`` (final delivery only) and ``Received`` (RFC 5321 §4.4, RFC 3848 protocol names).

    "for <rcpt>" is written only for a single recipient: with several it would reveal Bcc'd
    addresses to every recipient.
    """
    date = email.utils.formatdate(when, localtime=False)
    date = date.replace("-0000", "+0000")
    lines = []
    if return_path is not None:
        lines.append(f"Return-Path: <{sanitize(return_path, 256)}>")
    literal = f"IPv6:{ip}" if ":" in ip else ip          # RFC 5321 §4.1.3 address literal
    received = f"Received: from {sanitize(helo) or 'unknown'} ([{literal}])\r\n\tby {sanitize(host)} (tau)" \
               f" with {protocol} id {queue_id}"
    if len(recipients) == 1:
        received += f"\r\n\tfor <{sanitize(recipients[0], 256)}>"
    lines.append(received + f";\r\n\t{date}")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


class IncomingMessage:
    """The sink for one DATA or BDAT transfer: ``write`` lines as they come, then ``finish``."""

    def __init__(self, registry: Registry, delivery: Delivery, envelope: Envelope, header: bytes,
                 max_size: int) -> None:
        self._registry = registry
        self._delivery = delivery
        self.envelope = envelope
        self._max_size = max_size
        self._writer: Any = None          # a BlobWriter once the message outgrows HOLD_LIMIT
        self._pending: Deferred[Any] | None = None
        self.size = 0                      # client bytes (what SIZE limits), without our headers
        self._stored = 0                   # bytes written to the blob, with our headers
        self._held: bytearray | None = bytearray()
        self.failed: Reply | None = None
        self._done = False
        self.head = HeaderCapture()        # From/Sender, checked on submission (senders.py)
        self.bare_cr = False               # a CR not followed by LF anywhere in the data
        self._cr_pending = False           # the last write ended with CR (BDAT chunks)
        self.nul = False                   # a NUL byte anywhere in the data (RFC 5322 §2.3 forbids it)
        self._append(header)

    # -- streaming ---------------------------------------------------------------------------

    def write(self, data: bytes) -> Deferred[Any] | None:
        """Add message bytes (already CRLF-normalised, dot-unstuffed).

        Returns a Deferred while the blob writer is busy with earlier chunks: the caller stops
        reading from the client until it fires (back-pressure instead of unbounded buffering).
        """
        if self.failed is not None or self._done:
            return None
        self._scan(data)
        self.size += len(data)
        if self.size > self._max_size:
            # RFC 1870 §6.2 / RFC 3463 5.3.4; keep reading to the end of data, store nothing
            self.fail(Reply(552, "5.3.4 Message size exceeds fixed maximum message size"))
            return None
        return self._append(data)

    def _scan(self, data: bytes) -> None:
        """Keep the header and note bare CRs (RFC 5322 §2.3: CR only in CRLF)."""
        self.head.feed(data)
        if not data:
            return
        if b"\0" in data:
            self.nul = True
        if self._cr_pending and data[:1] != b"\n":
            self.bare_cr = True
        if data.count(b"\r") - data.endswith(b"\r") != data.count(b"\r\n"):
            self.bare_cr = True
        self._cr_pending = data.endswith(b"\r")

    def _append(self, data: bytes) -> Deferred[Any] | None:
        self._stored += len(data)
        if self._held is not None:
            if self._stored <= HOLD_LIMIT:
                self._held += data
                return None
            self._writer = self._registry.blobs.writer()
            data, self._held = bytes(self._held) + data, None
        if self._writer is None:
            return None
        d = self._writer.write(data)
        if d.called:
            out: list[Any] = []
            d.addBoth(out.append)
            if isinstance(out[0], Failure):
                self._write_failed(out[0])
            return None
        d.addErrback(self._write_failed)
        self._pending = d
        return d

    def _write_failed(self, failure: Failure) -> None:
        log.failure("blob write failed", failure=failure)
        self.fail(Reply(451, "4.3.0 Local error writing the message; try again later"))

    def fail(self, reply: Reply) -> None:
        """Give up on this message but keep swallowing its bytes; the reply comes at end of data."""
        if self.failed is None:
            self.failed = reply
            self._release()

    def abort(self) -> None:
        """The client went away mid-transfer: nothing of this message may remain."""
        if not self._done:
            self._done = True
            self._release()

    def _release(self) -> None:
        self._held = None
        if self._writer is not None:
            self._writer.abort().addErrback(lambda f: log.failure("blob abort failed", failure=f))

    # -- end of data ---------------------------------------------------------------------------

    async def finish(self) -> Reply:
        """Commit blob and rows; the 250 reply, or raise the Reply explaining the refusal."""
        if self._pending is not None and not self._pending.called:
            await self._pending
        if self.failed is not None:
            raise self.failed
        if self._done:
            raise Reply(451, "4.3.0 Transfer aborted")
        try:   # before anything is committed: a refused message leaves no blob and no row
            await self._delivery.check_message(self.envelope, self.bare_cr or self._cr_pending, self.head,
                                               nul=self.nul)
        except Reply as reply:
            self.fail(reply)
            raise
        self._done = True
        held, self._held = self._held, None
        checks = self._registry.inbound_checks     # SPF/DKIM/DMARC/spam: tau.mail.trust
        checked = checks is not None and not self._delivery.submission
        key, size, mailbox = "", len(held or b""), "INBOX"
        if held is None or not checked:
            key, size = await self._store(held)
        if checks is not None and checked:
            # a held message is stored by the checks, once, with their headers in front
            verdict = await checks.apply(self.envelope, key or None, size, held)
            if verdict.reject:
                raise Reply(verdict.code, verdict.text)
            key, size, held, mailbox = verdict.key, verdict.size, verdict.raw, verdict.mailbox
            self.envelope.checks = dict(verdict.results)
        linked = await self._link_attachments(key, size)
        if linked is not None:
            key, size, held = linked.key, linked.size, None
        try:
            parsed = await self._parse(held, key)
            return await self._delivery.deliver(self.envelope, key, size, parsed, mailbox)
        except BaseException:
            if linked is not None:
                await linked.undo()          # refused after all: its files and links go too
            raise

    async def _store(self, held: bytearray | None) -> tuple[str, int]:
        """Commit the streamed blob, or store the held bytes in one go."""
        try:
            if held is not None:
                info = await self._registry.blobs.put(bytes(held))
            else:
                info = await self._writer.commit()
        except Exception:
            log.failure("blob commit failed")
            raise Reply(451, "4.3.0 Local error storing the message; try again later") from None
        return info.key, info.size

    async def _link_attachments(self, key: str, size: int) -> Any:
        """Submission only: attachments over ``[flows] attachment_link_threshold`` become share
        links (``tau.flows.attach_links``) before any row is written, so the Sent copy, the DKIM
        signature (made later by the outbound worker) and every recipient see the same message."""
        links = self._registry.attachment_links
        user = self.envelope.user
        if links is None or not self._delivery.submission or user is None:
            return None
        linked = await links.rewrite_blob(user, key, size)
        if linked is not None:
            self._delivery._discard(key)     # the original is replaced; nothing references it
        return linked

    async def _parse(self, held: bytearray | None, key: str) -> Any:
        run = self._registry.run_in_thread
        if held is not None and len(held) <= THREAD_PARSE:
            return parse_message(bytes(held))
        if held is not None:
            return await run(parse_message, bytes(held))
        sync = self._registry.blobs.sync
        return await run(lambda: parse_message(sync.read(key)))
