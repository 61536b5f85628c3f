"""X3DH key agreement (Signal, "The X3DH Key Agreement Protocol", revision 1, 2016-11-04).

Choices (spec section 2.1): curve X25519, hash SHA-256, info ``b"tau X3DH"``.

Identity keys are Ed25519 (RFC 8032): the server can verify the signed prekey's signature
with them, and they take part in Diffie-Hellman through the birational map from the Edwards
curve to Montgomery form (RFC 7748 section 4.1: u = (1 + y) / (1 - y)); the private scalar is
the clamped first half of SHA-512(seed), exactly the scalar Ed25519 itself uses. This is the
single-key design the spec asks for (section 2.3 uses XEdDSA for the same purpose, converting
in the other direction) and is what libsodium's ``crypto_sign_ed25519_*_to_curve25519`` do.

Messages: Alice fetches Bob's bundle (IK_B, SPK_B + Sig, optional OPK_B), verifies the
signature, and computes SK = KDF(DH(IK_A, SPK_B) || DH(EK_A, IK_B) || DH(EK_A, SPK_B) [|| DH(EK_A, OPK_B)])
with KDF = HKDF(salt = 32 zero bytes, IKM = 32 0xFF bytes || DHs) (section 2.2). The associated
data is AD = IK_A || IK_B (section 3.3), bound into every Double Ratchet message.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_P = 2**255 - 19
INFO = b"tau X3DH"


class X3DHError(Exception):
    """A bundle or initial message that must not be used (bad signature, bad key)."""


def b64e(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def raw_public(key: Any) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def ed25519_public_to_x25519(public: bytes) -> bytes:
    """RFC 7748 section 4.1 birational map, Edwards y → Montgomery u."""
    if len(public) != 32:
        raise X3DHError("identity key must be 32 bytes")
    y = int.from_bytes(public, "little") & ((1 << 255) - 1)
    if y >= _P or y == 1:
        raise X3DHError("invalid identity key")
    u = (1 + y) * pow(1 - y, _P - 2, _P) % _P
    return u.to_bytes(32, "little")


class IdentityKey:
    """A device's long-term key: Ed25519 for signatures, its X25519 twin for DH."""

    def __init__(self, seed: bytes | None = None) -> None:
        self.seed = seed or os.urandom(32)
        self._signing = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.public = raw_public(self._signing.public_key())
        # X25519 clamps the scalar itself (RFC 7748 decodeScalar25519)
        self.dh = X25519PrivateKey.from_private_bytes(hashlib.sha512(self.seed).digest()[:32])

    def sign(self, data: bytes) -> bytes:
        return self._signing.sign(data)


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # low-order point: all-zero output (RFC 7748 section 6.1)
        raise X3DHError("invalid public key") from exc


def kdf(material: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=b"\0" * 32, info=INFO).derive(b"\xff" * 32 + material)


def verify_bundle(bundle: dict[str, Any]) -> None:
    """Check SPK's signature by IK (spec section 3.3: abort if it fails)."""
    try:
        identity = b64d(bundle["identity_key"])
        spk = bundle["signed_prekey"]
        Ed25519PublicKey.from_public_bytes(identity).verify(b64d(spk["signature"]), b64d(spk["public_key"]))
    except (InvalidSignature, KeyError, TypeError, ValueError) as exc:
        raise X3DHError("signed prekey signature does not verify") from exc


@dataclass
class Initiation:
    """What Alice keeps (SK, AD) and sends with her first messages (``header``)."""

    shared_key: bytes
    associated_data: bytes
    header: dict[str, Any]
    their_ratchet_key: bytes


def initiate(identity: IdentityKey, bundle: dict[str, Any]) -> Initiation:
    verify_bundle(bundle)
    their_ik = b64d(bundle["identity_key"])
    spk = b64d(bundle["signed_prekey"]["public_key"])
    ephemeral = X25519PrivateKey.generate()
    material = dh(identity.dh, spk) + dh(ephemeral, ed25519_public_to_x25519(their_ik)) + dh(ephemeral, spk)
    header: dict[str, Any] = {"ik": b64e(identity.public), "ek": b64e(raw_public(ephemeral.public_key())),
                              "spk": bundle["signed_prekey"]["key_id"], "opk": None}
    opk = bundle.get("one_time_prekey")
    if opk:
        material += dh(ephemeral, b64d(opk["public_key"]))
        header["opk"] = opk["key_id"]
    return Initiation(kdf(material), identity.public + their_ik, header, spk)


def respond(identity: IdentityKey, header: dict[str, Any], signed_prekey: X25519PrivateKey,
            one_time_prekey: X25519PrivateKey | None) -> tuple[bytes, bytes]:
    """Bob's side: (SK, AD) from Alice's initial message header."""
    their_ik, ek = b64d(header["ik"]), b64d(header["ek"])
    material = dh(signed_prekey, ed25519_public_to_x25519(their_ik)) + dh(identity.dh, ek) + dh(signed_prekey, ek)
    if header.get("opk") is not None:
        if one_time_prekey is None:
            raise X3DHError("unknown one-time prekey")
        material += dh(one_time_prekey, ek)
    return kdf(material), their_ik + identity.public
