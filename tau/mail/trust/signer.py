"""Which key signs an outgoing message (RFC 6376 §3.5 d=, RFC 7489 §3.1 alignment).

The signing domain is the ``From:`` header's domain when we hold a key for it (so the signature
is DMARC-aligned), else the envelope sender's domain, else the message goes out unsigned. Keys are
read from disk once and re-read when a domain has none (a key made by ``tau dkim keygen`` while
the daemon runs is picked up without a restart).
"""

from __future__ import annotations

import time
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from tau.mail.trust import dkim

if TYPE_CHECKING:
    from tau.registry import Registry

log = Logger()
RELOAD_AFTER = 60.0


class Signer:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.folder = dkim.keys_dir(registry.config)
        self._keys: dict[str, list[dkim.DkimKey]] | None = None
        self._loaded = 0.0

    async def keys(self) -> dict[str, list[dkim.DkimKey]]:
        if self._keys is None or time.monotonic() - self._loaded > RELOAD_AFTER:
            self._keys = await self.registry.run_in_thread(dkim.load_keys, self.folder)
            self._loaded = time.monotonic()
        return self._keys

    async def sign_blob(self, mail_from: str, blob_key: str, message: bytes | None) -> bytes:
        keys = await self.keys()
        if not keys:
            return b""
        if message is None:
            message = await self.registry.blobs.read(blob_key)
        domain = pick_domain(message, mail_from, keys)
        if domain is None:
            return b""
        try:
            return await self.registry.run_in_thread(dkim.sign, message, keys[domain])
        except Exception:
            log.failure("DKIM signing for {domain} failed", domain=domain)
            return b""


def from_domain(message: bytes) -> str | None:
    """The domain of the single ``From:`` address (RFC 7489 §6.6.1: several → no alignment)."""
    head = message.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    values = []
    for field in head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        name, _, value = field.partition(":")
        if name.strip().lower() == "from":
            values.append(value.strip())
    addresses = [a for _, a in getaddresses(values) if "@" in a]
    if len(values) != 1 or len(addresses) != 1:
        return None
    return addresses[0].rpartition("@")[2].lower().rstrip(".>")


def pick_domain(message: bytes, mail_from: str, keys: dict[str, list[Any]]) -> str | None:
    header = from_domain(message)
    if header and header in keys:
        return header
    envelope = mail_from.rpartition("@")[2].lower()
    return envelope if envelope in keys else None
