"""S/MIME on ``POST /api/emails``: which of OpenPGP and S/MIME protects a draft, and the S/MIME half.

``"crypto": "pgp"`` or ``"smime"`` chooses. Without it, when ``sign`` or ``encrypt`` is set:
OpenPGP when it can do what is asked (``sign``: the sender has a PGP private key; ``encrypt``:
every recipient has a PGP key), else S/MIME when it can (``sign``: the sender has an S/MIME
certificate and key; ``encrypt``: an S/MIME certificate is known for every recipient — a local
user's own, or one the sender uploaded or collected), else S/MIME's refusal when the sender has an
S/MIME certificate and no PGP key, else OpenPGP's refusal — the answers each always gave
(``recipient_keys_missing`` naming the addresses, ``no_private_key``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tau.mail import smime, smime_store
from tau.mail.errors import InvalidMessage

if TYPE_CHECKING:
    from tau.mail.compose import Draft
    from tau.registry import Registry


@dataclass
class Material:
    own: tuple[str, str] | None        # the sender's (certificate PEM, sealed key)
    certs: dict[str, str]              # certificate PEM by lower-cased recipient address


async def material(registry: Registry, user: Any, draft: Draft) -> Material:
    own = await registry.db.run("smime_identity", smime_store.identity, user.id, readonly=True)
    certs: dict[str, str] = {}
    if draft.encrypt:
        certs = await registry.db.run("smime_certs_for", smime_store.certificates_for, user.id,
                                      draft.recipients, readonly=True)
    return Material(own, certs)


def pgp_fits(draft: Draft, keys: dict[str, tuple[str, str | None]], sender: str) -> bool:
    own = keys.get(sender.lower())
    if draft.sign and (own is None or own[1] is None):
        return False
    return not draft.encrypt or all(r.lower() in keys for r in draft.recipients)


def smime_fits(draft: Draft, found: Material) -> bool:
    if draft.sign and found.own is None:
        return False
    return not draft.encrypt or all(r.lower() in found.certs for r in draft.recipients)


def choose(draft: Draft, keys: dict[str, tuple[str, str | None]], found: Material, sender: str) -> str:
    """``"pgp"`` or ``"smime"`` (module docstring)."""
    if draft.crypto is not None:
        return draft.crypto
    if pgp_fits(draft, keys, sender):
        return "pgp"
    if smime_fits(draft, found) or (found.own is not None and sender.lower() not in keys):
        return "smime"
    return "pgp"


def _protect(keys: Any, user_id: int, content: bytes, own: tuple[str, str] | None, recipients: list[str],
             encrypt: bool, sign: bool) -> tuple[list[tuple[str, str]], bytes]:
    """Blocking: unseal the sender's key only when signing, then sign and/or encrypt."""
    key_der = smime.unseal(keys, own[1], user_id) if sign and own is not None else None
    return smime.protect(content, own[0] if own else None, key_der, recipients, encrypt, sign)


async def protect(registry: Registry, draft: Draft, msg: Any, content: bytes, found: Material, user: Any) -> bytes:
    """The whole message, S/MIME-signed and/or encrypted; ``InvalidMessage`` names what is missing."""
    recipients: list[str] = []
    if draft.encrypt:
        missing = [r for r in draft.recipients if r.lower() not in found.certs]
        if missing:
            raise InvalidMessage("recipient_keys_missing", "no S/MIME certificate known for: " + ", ".join(missing),
                                 extra={"recipients": missing})
        recipients = list(dict.fromkeys(found.certs[r.lower()] for r in draft.recipients))
        if found.own is not None:
            recipients.append(found.own[0])      # the Sent copy stays readable
    if draft.sign and found.own is None:
        raise InvalidMessage("no_private_key", "upload a PKCS#12 (PUT /api/keys/smime) to sign with S/MIME")
    author = (draft.sender or user.address).lower()
    if draft.sign and found.own is not None and author not in smime.addresses(smime.load_certificate(found.own[0])):
        raise InvalidMessage("no_private_key", f"the S/MIME certificate does not name {author}: receivers would"
                             " find the signature invalid")
    headers, body = await registry.run_in_thread(_protect, registry.keys, user.id, content, found.own, recipients,
                                                 draft.encrypt, draft.sign)
    msg.set_payload("")
    return smime.wrap(msg, headers, body)
