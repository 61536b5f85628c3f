"""OpenPGP for TauMail with pgpy: key upload, Web Key Directory, PGP/MIME, Autocrypt.

- ``PUT /api/keys/pgp`` ``{"public_key", "private_key"?, "passphrase"?}``: the public key must carry
  a user ID with the caller's address; a private key is kept only protected by the user's
  passphrase (an unprotected upload is protected with the given passphrase first); the passphrase
  itself is never stored, so signing needs it again in each request (``"passphrase"``).
- WKD (draft-koch-openpgp-webkey-service §3.1): ``/.well-known/openpgpkey/hu/HASH?l=LOCAL`` (direct)
  and ``/.well-known/openpgpkey/DOMAIN/hu/HASH`` (advanced), HASH = z-base-32(SHA-1(local part in
  lower case)); the answer is the binary key.
- PGP/MIME (RFC 3156): ``encrypt`` → ``multipart/encrypted`` (§4), signed inside when ``sign`` is
  also set (§6.2, one OpenPGP message, as Thunderbird does), to every recipient plus the sender so
  the Sent copy stays readable; ``sign`` alone → ``multipart/signed`` (§5, detached signature
  over the CRLF-canonical body entity).
- Autocrypt (autocrypt.org Level 1 §2.1): ``Autocrypt: addr=...; keydata=...`` when the sender
  has a key. pgpy is pure Python and slow: everything here runs in a worker thread.

This module is the crypto; the ``pgp_keys`` rows live in :mod:`tau.mail.pgp_store`, the routes in
:mod:`tau.mail.pgp_api`.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from tau.mail import pgp_store

if TYPE_CHECKING:
    from tau.registry import Registry

_ZB32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def zbase32(data: bytes) -> str:
    bits = "".join(f"{b:08b}" for b in data)
    bits += "0" * (-len(bits) % 5)
    return "".join(_ZB32[int(bits[i:i + 5], 2)] for i in range(0, len(bits), 5))


def wkd_hash(local: str) -> str:
    return zbase32(hashlib.sha1(local.lower().encode("utf-8")).digest())


async def keys_of(registry: Registry, addresses: list[str]) -> dict[str, tuple[str, str | None]]:
    """(armored public, armored protected private or None) per address that has a key."""
    return await registry.db.run("pgp_keys_of", pgp_store.keys_of, registry.keyring, addresses, readonly=True)


# -- key upload -------------------------------------------------------------------------------

def check_upload(address: str, public: str, private: str | None,
                 passphrase: str | None) -> tuple[str, str, str | None]:
    """(fingerprint, armored public, armored protected private or None); ValueError explains."""
    import pgpy
    from pgpy.constants import HashAlgorithm, SymmetricKeyAlgorithm

    key, _ = pgpy.PGPKey.from_blob(public)
    if not key.is_public:
        raise ValueError("public_key holds a private key")
    if not any((uid.email or "").lower() == address.lower() for uid in key.userids):
        raise ValueError(f"the key has no user ID for {address}")
    armored_private = None
    if private:
        secret, _ = pgpy.PGPKey.from_blob(private)
        if secret.is_public or secret.fingerprint != key.fingerprint:
            raise ValueError("private_key is not the secret half of public_key")
        if not secret.is_protected:
            if not passphrase:
                raise ValueError("an unprotected private key needs a passphrase to protect it with")
            secret.protect(passphrase, SymmetricKeyAlgorithm.AES256, HashAlgorithm.SHA256)
        elif passphrase:
            with secret.unlock(passphrase):
                pass
        armored_private = str(secret)
    return str(key.fingerprint).replace(" ", ""), str(key), armored_private


def binary(armored: str) -> bytes:
    import pgpy

    key, _ = pgpy.PGPKey.from_blob(armored)
    return bytes(key)


# -- PGP/MIME -----------------------------------------------------------------------------------

def autocrypt_header(address: str, armored_public: str) -> str:
    keydata = base64.b64encode(binary(armored_public)).decode()
    return f"addr={address}; prefer-encrypt=mutual; keydata={keydata}"


def protect(content: bytes, sender: str, public_keys: list[str], private: str | None, passphrase: str | None,
            encrypt: bool, sign: bool) -> tuple[str, bytes]:
    """(Content-Type header value, body) of the PGP/MIME entity wrapping ``content`` (blocking)."""
    import pgpy
    from pgpy.constants import SymmetricKeyAlgorithm

    signer = None
    if sign:
        if private is None:
            raise PermissionError("no private key stored for signing")
        signer, _ = pgpy.PGPKey.from_blob(private)
    boundary = f"=_tau_pgp_{uuid.uuid4().hex}"

    def with_signer(fn: Any) -> Any:
        if signer is None:
            return fn(None)
        if not passphrase:
            raise PermissionError("signing needs the key's passphrase")
        try:
            with signer.unlock(passphrase):
                return fn(signer)
        except pgpy.errors.PGPDecryptionError:
            raise PermissionError("wrong passphrase for the private key")

    if encrypt:
        def build(key: Any) -> str:
            message = pgpy.PGPMessage.new(content)
            if key is not None:
                message |= key.sign(message)
            cipher = SymmetricKeyAlgorithm.AES256
            session = cipher.gen_key()
            for armored in public_keys:
                recipient, _ = pgpy.PGPKey.from_blob(armored)
                message = recipient.encrypt(message, cipher=cipher, sessionkey=session)
            del session
            return str(message)

        armored = with_signer(build)
        body = (f"This is an OpenPGP/MIME encrypted message (RFC 4880 and 3156)\r\n--{boundary}\r\n"
                "Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification"
                f"\r\n\r\nVersion: 1\r\n\r\n--{boundary}\r\n"
                "Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n"
                "Content-Description: OpenPGP encrypted message\r\n"
                "Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
                + armored.replace("\r\n", "\n").replace("\n", "\r\n") + f"\r\n--{boundary}--\r\n")
        return (f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{boundary}"',
                body.encode())
    signature = with_signer(lambda key: str(key.sign(content)))
    body = (f"This is an OpenPGP/MIME signed message (RFC 4880 and 3156)\r\n--{boundary}\r\n".encode() + content
            + f"\r\n--{boundary}\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n"
              "Content-Description: OpenPGP digital signature\r\n"
              "Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n".encode()
            + signature.replace("\r\n", "\n").replace("\n", "\r\n").encode() + f"\r\n--{boundary}--\r\n".encode())
    return (f'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; boundary="{boundary}"',
            body)


def wrap(msg: EmailMessage, content_type: str, body: bytes) -> bytes:
    """The outer message: ``msg``'s headers (no content headers) + the PGP/MIME entity."""
    from tau.mail.compose import as_bytes

    for name in ("Content-Type", "Content-Transfer-Encoding"):
        del msg[name]
    head = as_bytes(msg).split(b"\r\n\r\n", 1)[0]
    return head + b"\r\nContent-Type: " + content_type.encode() + b"\r\n\r\n" + body
