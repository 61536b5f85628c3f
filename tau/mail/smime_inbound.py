"""Received S/MIME: the ``"smime"`` field of ``GET /api/emails/{id}`` and collecting certificates.

- The REST view: for a message whose BODYSTRUCTURE names pkcs7 (no blob is read otherwise), the
  signature is verified and an encrypted message addressed to the reader's certificate is
  decrypted, its entity rendered as ``text``/``html``/``attachments`` in place of the envelope:
  ``"smime": {"signed", "encrypted", "decrypted"?, "valid"?, "signer"?, "fingerprint"?, "reason"?}``.
- Collection (RFC 8551 §2.5.3 "senders include their certificate"): after a message lands in a
  local INBOX (``mailbox.changed``, on the node that delivered it, as iMIP listens), one carrying
  ``application/pkcs7-signature`` is read and, when validly signed by a certificate naming its
  From address, that certificate is kept as the user's certificate for the sender
  (``smime_store.save_certificate``, source ``mail``). Delivery never waits for this: the event
  fires after the SMTP 250 was given, and the crypto runs in a worker thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from tau.bus import events
from tau.mail import smime, smime_read, smime_store
from tau.mail.mime import view

if TYPE_CHECKING:
    from tau.clock import Clock
    from tau.registry import Registry

log = Logger()
MAX_COLLECT = 4 * 1024 * 1024        # a signed message larger than this is not read for its certificate


def _inspect(keys: Any, user_id: int, raw: bytes, own: tuple[str, str] | None,
             now: float) -> dict[str, Any]:
    key = None
    if own is not None and smime_read.kind(raw) == "enveloped":
        key = (own[0], smime.unseal(keys, own[1], user_id))
    result, inner = smime_read.inspect(raw, key, now)
    out: dict[str, Any] = {"smime": result} if result is not None else {}
    if inner is not None:
        rendered = view.render(inner)
        out.update({k: rendered[k] for k in ("text", "html", "attachments")})
    return out


def _now(registry: Registry) -> float:
    clock: Clock = registry.clock
    return float(clock.seconds())


async def rest_view(registry: Registry, user: Any, raw: bytes, bodystructure: str) -> dict[str, Any]:
    """Fields to add to the REST view of ``raw`` (empty unless it is S/MIME). Anyone can send any
    bytes: whatever a hostile structure makes the reader raise, the view still answers."""
    if "pkcs7" not in (bodystructure or "").lower():
        return {}
    own = await registry.db.run("smime_identity", smime_store.identity, user.id, readonly=True)
    try:
        result: dict[str, Any] = await registry.run_in_thread(_inspect, registry.keys, user.id, raw, own,
                                                              _now(registry))
    except Exception:
        log.failure("S/MIME view of a message failed")
        return {"smime": {"signed": False, "encrypted": False, "error": "unreadable S/MIME structure"}}
    return result


class Collector:
    """Keeps the certificates of validly signed mail delivered to local users."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pending: list[Any] = []

    def subscribe(self) -> None:
        bus = self.registry.bus       # once per cluster: only mail delivered on this node
        getattr(bus, "subscribe_local", bus.subscribe)(events.MAILBOX_CHANGED, self._on_event)

    def _on_event(self, topic: str, event: dict[str, Any]) -> None:
        if event.get("kind") != "append" or event.get("mailbox") != "INBOX":
            return
        d: Any = defer.ensureDeferred(self.process(str(event.get("user", "")), int(event.get("mailbox_id", 0)),
                                                   [int(u) for u in event.get("uids", [])]))
        d.addErrback(lambda f: log.failure("S/MIME certificate collection failed", failure=f))
        self.pending.append(d)
        d.addBoth(self._done, d)

    def _done(self, result: Any, d: Any) -> Any:
        if d in self.pending:
            self.pending.remove(d)
        return result

    async def process(self, user: str, mailbox_id: int, uids: list[int]) -> int:
        """Keep the certificates of the signed messages among ``uids``; returns how many were kept."""
        store = self.registry.mail_store
        metas = [m for m in await store.fetch(mailbox_id, uids, user=user)
                 if "pkcs7-signature" in (m.bodystructure or "").lower() and m.size <= MAX_COLLECT]
        kept = 0
        for meta in metas:
            raw = await store.read(meta.blob_key)
            found = await self.registry.run_in_thread(smime_read.collectable, raw, _now(self.registry))
            if found is None or found[0] == user.lower():
                continue
            address, cert = found
            db = self.registry.db
            owner = await db.run("smime_owner", smime_store.user_id_of, user, readonly=True)
            if owner is not None and await db.run(
                    "smime_collect", smime_store.save_certificate, owner, address, smime.fingerprint(cert),
                    smime.pem(cert), "mail", int(cert.not_valid_after_utc.timestamp())):
                kept += 1
                log.info("S/MIME certificate of {address} kept for {user}", address=address, user=user)
        return kept
