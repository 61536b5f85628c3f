"""The Double Ratchet (Signal, "The Double Ratchet Algorithm", revision 1, 2016-11-20).

Section 5.2 recommendations: GENERATE_DH/DH are X25519; KDF_RK is HKDF-SHA256 with the root
key as salt; KDF_CK is HMAC-SHA256 with constant 0x01 (message key) and 0x02 (next chain key).
ENCRYPT: the message key is used once, so HKDF(mk) yields an AES-256-GCM key and nonce (the
"nonce derived from the message key" the spec allows) with AD || header as associated data.
Skipped message keys are kept (at most ``MAX_SKIP`` per chain, section 3.2) for out-of-order
delivery. Decryption works on a copy of the state and commits only on success (section 3.5).
"""

from __future__ import annotations

import hmac
import struct
from collections import OrderedDict
from hashlib import sha256
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tau.client.x3dh import b64d, b64e, dh, raw_public

MAX_SKIP = 1000
MAX_STORED_SKIPPED = 2000


class RatchetError(Exception):
    """A message that cannot be decrypted (tampered, replayed, or too far ahead)."""


def kdf_rk(rk: bytes, dh_out: bytes) -> tuple[bytes, bytes]:
    out = HKDF(hashes.SHA256(), 64, salt=rk, info=b"tau ratchet root").derive(dh_out)
    return out[:32], out[32:]


def kdf_ck(ck: bytes) -> tuple[bytes, bytes]:
    return hmac.new(ck, b"\x02", sha256).digest(), hmac.new(ck, b"\x01", sha256).digest()


def _aead(mk: bytes) -> tuple[AESGCM, bytes]:
    okm = HKDF(hashes.SHA256(), 44, salt=b"\0" * 32, info=b"tau ratchet message").derive(mk)
    return AESGCM(okm[:32]), okm[32:]


def header_bytes(header: dict[str, Any]) -> bytes:
    return b64d(header["dh"]) + struct.pack(">II", header["pn"], header["n"])


def _priv_bytes(key: X25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


class Ratchet:
    def __init__(self) -> None:
        self.dhs: X25519PrivateKey = X25519PrivateKey.generate()
        self.dhr: bytes | None = None
        self.rk = b""
        self.cks: bytes | None = None
        self.ckr: bytes | None = None
        self.ns = self.nr = self.pn = 0
        self.skipped: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    @classmethod
    def alice(cls, sk: bytes, bob_ratchet_key: bytes) -> "Ratchet":
        """RatchetInitAlice (section 3.3): Bob's signed prekey is his first ratchet key."""
        r = cls()
        r.dhr = bob_ratchet_key
        r.rk, r.cks = kdf_rk(sk, dh(r.dhs, r.dhr))
        return r

    @classmethod
    def bob(cls, sk: bytes, bob_ratchet_pair: X25519PrivateKey) -> "Ratchet":
        r = cls()
        r.dhs, r.rk = bob_ratchet_pair, sk
        return r

    def encrypt(self, plaintext: bytes, ad: bytes) -> tuple[dict[str, Any], bytes]:
        if self.cks is None:
            raise RatchetError("no sending chain yet")
        self.cks, mk = kdf_ck(self.cks)
        header = {"dh": b64e(raw_public(self.dhs.public_key())), "pn": self.pn, "n": self.ns}
        self.ns += 1
        aead, nonce = _aead(mk)
        return header, aead.encrypt(nonce, plaintext, ad + header_bytes(header))

    def decrypt(self, header: dict[str, Any], ciphertext: bytes, ad: bytes) -> bytes:
        trial = self.copy()
        try:
            plaintext = trial._decrypt(header, ciphertext, ad)
        except (InvalidTag, ValueError, KeyError, TypeError, struct.error) as exc:
            raise RatchetError("message does not decrypt") from exc
        self.__dict__.update(trial.__dict__)
        return plaintext

    def _decrypt(self, header: dict[str, Any], ciphertext: bytes, ad: bytes) -> bytes:
        key = (header["dh"], int(header["n"]))
        aad = ad + header_bytes(header)
        if key in self.skipped:
            mk = self.skipped.pop(key)
            aead, nonce = _aead(mk)
            return aead.decrypt(nonce, ciphertext, aad)
        their = b64d(header["dh"])
        if their != self.dhr:
            self._skip(int(header["pn"]))
            self._dh_ratchet(their)
        self._skip(int(header["n"]))
        assert self.ckr is not None
        self.ckr, mk = kdf_ck(self.ckr)
        self.nr += 1
        aead, nonce = _aead(mk)
        return aead.decrypt(nonce, ciphertext, aad)

    def _skip(self, until: int) -> None:
        if self.nr + MAX_SKIP < until:
            raise RatchetError("too many skipped messages")
        if self.ckr is None or self.dhr is None:
            return
        while self.nr < until:
            self.ckr, mk = kdf_ck(self.ckr)
            self.skipped[(b64e(self.dhr), self.nr)] = mk
            self.nr += 1
            while len(self.skipped) > MAX_STORED_SKIPPED:
                self.skipped.popitem(last=False)

    def _dh_ratchet(self, their: bytes) -> None:
        self.pn, self.ns, self.nr = self.ns, 0, 0
        self.dhr = their
        self.rk, self.ckr = kdf_rk(self.rk, dh(self.dhs, self.dhr))
        self.dhs = X25519PrivateKey.generate()
        self.rk, self.cks = kdf_rk(self.rk, dh(self.dhs, self.dhr))

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def opt(v: bytes | None) -> str | None:
            return None if v is None else b64e(v)

        return {"dhs": b64e(_priv_bytes(self.dhs)), "dhr": opt(self.dhr), "rk": b64e(self.rk), "cks": opt(self.cks),
                "ckr": opt(self.ckr), "ns": self.ns, "nr": self.nr, "pn": self.pn,
                "skipped": [[k[0], k[1], b64e(v)] for k, v in self.skipped.items()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Ratchet":
        def opt(v: str | None) -> bytes | None:
            return None if v is None else b64d(v)

        r = cls()
        r.dhs = X25519PrivateKey.from_private_bytes(b64d(d["dhs"]))
        r.dhr, r.rk, r.cks, r.ckr = opt(d["dhr"]), b64d(d["rk"]), opt(d["cks"]), opt(d["ckr"])
        r.ns, r.nr, r.pn = d["ns"], d["nr"], d["pn"]
        r.skipped = OrderedDict(((k, n), b64d(v)) for k, n, v in d["skipped"])
        return r

    def copy(self) -> "Ratchet":
        r = Ratchet.__new__(Ratchet)
        r.__dict__.update(self.__dict__)
        r.skipped = OrderedDict(self.skipped)
        return r
