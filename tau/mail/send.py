"""Send a ``compose.Draft`` (``POST /api/emails``, the flows): validate, build, protect (``pgp`` or
S/MIME, as ``smime_send.choose`` decides), store, queue.

The same path as SMTP submission (RFC 6409): the sender is the authenticated user; ``"from"``
may name another address only when submission would accept it in From (an alias of the user or a
``tau user send-as`` grant; otherwise 403 ``sender_not_allowed``, checked before anything is
built), local recipients are delivered at once, remote ones are queued for
the delivery worker (which DKIM-signs them), and the Sent copy is stored — all in one
transaction, after the blob is durable. Before the message is built, attachments over
``[flows] attachment_link_threshold`` become share links (``registry.attachment_links``, installed
by the flows service): the link is inside whatever PGP then signs or encrypts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tau.bus import events
from tau.mail import compose, pgp, smime_send
from tau.mail.errors import InvalidMessage, KeyLocked, MessageTooLarge, SenderNotAllowed
from tau.mail.sieve import filters
from tau.mail.store import QuotaExceeded

if TYPE_CHECKING:
    from tau.registry import Registry

async def send(registry: Registry, store: Any, user: Any, draft: compose.Draft) -> dict[str, Any]:
    """Send ``draft`` as ``user``; raises ``MailError`` (``tau.mail.errors``) when it is refused."""
    compose.check(draft)
    if draft.sender is not None and draft.sender != user.address:
        allowed = await registry.db.run("mail_api_send_as", _may_send_as, user.address, draft.sender,
                                        readonly=True)
        if not allowed:
            raise SenderNotAllowed("sender_not_allowed",
                                   f"{user.address} may not send as {draft.sender} (tau user send-as add)")
    sources = [await compose.attachment_source(registry, user, item) for item in draft.attachments]
    links = registry.attachment_links
    linked = await links.link_attachments(user, sources) if links is not None and sources else None
    try:
        return await _send(registry, store, user, draft, linked.entries if linked is not None else sources)
    except BaseException:
        if linked is not None:
            await linked.undo()      # not sent: the files and links it made go too
        raise


async def _send(registry: Registry, store: Any, user: Any, draft: compose.Draft, entries: list[Any]) -> dict[str, Any]:
    files: compose.Files = [e if isinstance(e, compose.Link) else await compose.read_attachment(registry, e)
                            for e in entries]
    sender = user.address
    author = draft.sender or sender
    hostname = registry.config.tau.hostname
    wanted = [sender, *draft.recipients] if (draft.encrypt or draft.sign) else [sender]
    keys = await pgp.keys_of(registry, wanted)
    extra: list[tuple[str, str]] = []
    own = keys.get(sender.lower())
    if own is not None and author == sender:     # Autocrypt's addr must be the From address
        extra.append(("Autocrypt", await registry.run_in_thread(pgp.autocrypt_header, sender, own[0])))
    msg = compose.build(author, draft, files, hostname, extra)
    if draft.encrypt or draft.sign:
        found = await smime_send.material(registry, user, draft)
        if smime_send.choose(draft, keys, found, sender) == "smime":
            content = compose.as_bytes(compose.content_part(draft, files))
            raw = await smime_send.protect(registry, draft, msg, content, found, user)
        else:
            raw = await _protected(registry, draft, msg, files, keys, sender)
    else:
        raw = compose.as_bytes(msg)
    if len(raw) > registry.config.limits.message_size:
        raise MessageTooLarge("payload_too_large", "the message is larger than the size limit")
    await store.ensure_defaults(sender)
    info = await registry.blobs.put(raw)
    from tau.mail.store.fields import prepare

    try:
        fields = await registry.run_in_thread(prepare, None, raw)
        local_delivery = await filters.local_delivery(registry, store.ctx, draft.recipients, author, raw, info.key,
                                                      info.size, fields, msg["Message-ID"], sender)
        sent = await registry.db.run("mail_api_send", compose.send_txn, store.ctx, sender, draft.recipients,
                                     info.key, info.size, fields, msg["Message-ID"], author, local_delivery)
    except QuotaExceeded as exc:
        await store.discard_blob(info.key)
        raise MessageTooLarge("quota_exceeded", exc.message)
    except BaseException:
        await store.discard_blob(info.key)
        raise
    if registry.serving("outbound"):
        registry.outbound.kick()
    events.publish(registry.bus, events.MAIL_SUBMITTED, {"user": sender, "recipients": list(draft.recipients)})
    box = await store.get_mailbox(sender, sent.mailbox)
    return {"id": f"{box.id}.{sent.uid}" if box else None, "message_id": msg["Message-ID"]}


def _may_send_as(txn: Any, address: str, sender: str) -> bool:
    from tau.auth import accounts

    user = accounts.get_user(txn, address)
    return user is not None and accounts.user_may_send_as(txn, user, sender)


async def _protected(registry: Registry, draft: compose.Draft, msg: Any, files: compose.Files,
                     keys: dict[str, tuple[str, str | None]], sender: str) -> bytes:
    own = keys.get(sender.lower())
    public_keys: list[str] = []
    if draft.encrypt:
        missing = [r for r in draft.recipients if r.lower() not in keys]
        if missing:
            raise InvalidMessage("recipient_keys_missing", "no OpenPGP key known for: " + ", ".join(missing),
                                 extra={"recipients": missing})
        public_keys = [keys[r.lower()][0] for r in draft.recipients]
        if own is not None:
            public_keys.append(own[0])
    if draft.sign and (own is None or own[1] is None):
        raise InvalidMessage("no_private_key", "upload a private key (PUT /api/keys/pgp) to sign")
    content = compose.as_bytes(compose.content_part(draft, files))
    try:
        ctype, body = await registry.run_in_thread(pgp.protect, content, sender, public_keys,
                                                   own[1] if own else None, draft.passphrase, draft.encrypt,
                                                   draft.sign)
    except PermissionError as exc:
        raise KeyLocked("key_locked", str(exc))
    msg.set_payload("")   # wrap keeps only the headers; a multipart payload (attachments) would not serialise
    return pgp.wrap(msg, ctype, body)
