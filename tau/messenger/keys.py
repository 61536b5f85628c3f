"""Key distribution (X3DH, Signal spec revision 1, sections 3.2 and 3.3): store, verify, hand out.

The server is the X3DH "server" role: it keeps each device's public identity key, signed
prekey (with its signature, verified here on upload so a client can never publish a bundle its
own identity did not sign) and one-time prekeys, and gives each one-time prekey to exactly one
fetcher. Key choice (documented in the client too): the identity key is Ed25519 (RFC 8032),
used for signatures as is and for Diffie-Hellman through the birational map to X25519
(RFC 7748 section 4.1), the same single-key idea as Signal's XEdDSA; prekeys are X25519.
The signature is Ed25519 over the 32 raw bytes of the signed prekey (X3DH ``Sig(IK, Encode(SPK))``).

Handing a one-time prekey out once: on PostgreSQL the candidate row is locked with
``FOR UPDATE SKIP LOCKED`` so concurrent fetchers each take a different row instead of
queueing on the same one; SQLite has a single writer (``BEGIN IMMEDIATE``) which serialises them.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tau.storage.database import Txn

MAX_DEVICE_ID = 2**31 - 1
MAX_KEY_ID = 2**31 - 1
MAX_UPLOAD = 200  # one-time prekeys per request
MAX_STORED = 1000  # one-time prekeys per device
LOW_PREKEYS = 10  # below this the owner is told to upload more


class BadKeys(ValueError):
    """An invalid key upload; ``code`` becomes the API error."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def decode_key(value: Any, what: str, size: int = 32) -> bytes:
    """Standard or URL-safe base64 of exactly ``size`` bytes."""
    if not isinstance(value, str) or len(value) > 4 * size:
        raise BadKeys("invalid_key", f"{what} must be base64 of {size} bytes")
    try:
        raw = base64.b64decode(value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4),
                               validate=True)
    except (binascii.Error, ValueError):
        raise BadKeys("invalid_key", f"{what} is not valid base64")
    if len(raw) != size:
        raise BadKeys("invalid_key", f"{what} must be {size} bytes, got {len(raw)}")
    return raw


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def int_in_range(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadKeys("invalid_request", f"{what} must be an integer from {low} to {high}")
    return value


@dataclass(frozen=True)
class Upload:
    device_id: int
    identity_key: str
    signed_prekey_id: int
    signed_prekey: str
    signature: str
    one_time: list[tuple[int, str]]


def parse_upload(body: dict[str, Any]) -> Upload:
    """Validate a ``PUT /api/keys`` body and verify the signed prekey's signature."""
    device_id = int_in_range(body.get("device_id"), "device_id", 1, MAX_DEVICE_ID)
    identity = decode_key(body.get("identity_key"), "identity_key")
    spk = body.get("signed_prekey")
    if not isinstance(spk, dict):
        raise BadKeys("invalid_request", "signed_prekey must be an object {key_id, public_key, signature}")
    spk_id = int_in_range(spk.get("key_id"), "signed_prekey.key_id", 0, MAX_KEY_ID)
    spk_public = decode_key(spk.get("public_key"), "signed_prekey.public_key")
    signature = decode_key(spk.get("signature"), "signed_prekey.signature", 64)
    try:
        Ed25519PublicKey.from_public_bytes(identity).verify(signature, spk_public)
    except (InvalidSignature, ValueError):
        raise BadKeys("invalid_signature", "signed_prekey.signature does not verify with identity_key")
    raw_otks = body.get("one_time_prekeys", [])
    if not isinstance(raw_otks, list) or len(raw_otks) > MAX_UPLOAD:
        raise BadKeys("invalid_request", f"one_time_prekeys must be a list of at most {MAX_UPLOAD}")
    one_time: dict[int, str] = {}
    for item in raw_otks:
        if not isinstance(item, dict):
            raise BadKeys("invalid_request", "each one-time prekey is {key_id, public_key}")
        key_id = int_in_range(item.get("key_id"), "one_time_prekeys[].key_id", 0, MAX_KEY_ID)
        one_time[key_id] = b64(decode_key(item.get("public_key"), "one_time_prekeys[].public_key"))
    return Upload(device_id, b64(identity), spk_id, b64(spk_public), b64(signature), sorted(one_time.items()))


def store_upload(txn: Txn, user_id: int, up: Upload, now: int) -> int:
    """Create or update the device; a new identity key resets its prekeys. Returns prekeys stored."""
    row = txn.query_one("SELECT id, identity_key FROM msg_devices WHERE user_id = ? AND device_id = ?",
                        (user_id, up.device_id))
    if row is None:
        txn.execute("INSERT INTO msg_devices (user_id, device_id, registration_id, identity_key, signed_prekey_id,"
                    " signed_prekey, signed_prekey_signature, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (user_id, up.device_id, secrets.randbelow(2**31 - 1) + 1, up.identity_key,
                     up.signed_prekey_id, up.signed_prekey, up.signature, now, now))
        ref = txn.scalar("SELECT id FROM msg_devices WHERE user_id = ? AND device_id = ?", (user_id, up.device_id))
    else:
        ref = row[0]
        if row[1] != up.identity_key:  # a reinstalled device: old sessions, prekeys and queue are void
            txn.execute("DELETE FROM msg_prekeys WHERE device_ref = ?", (ref,))
            txn.execute("DELETE FROM msg_queue WHERE user_id = ? AND device_id = ?", (user_id, up.device_id))
            txn.execute("UPDATE msg_devices SET registration_id = ? WHERE id = ?",
                        (secrets.randbelow(2**31 - 1) + 1, ref))
        txn.execute("UPDATE msg_devices SET identity_key = ?, signed_prekey_id = ?, signed_prekey = ?,"
                    " signed_prekey_signature = ?, updated_at = ? WHERE id = ?",
                    (up.identity_key, up.signed_prekey_id, up.signed_prekey, up.signature, now, ref))
    count = int(txn.scalar("SELECT COUNT(*) FROM msg_prekeys WHERE device_ref = ?", (ref,)) or 0)
    existing = {r[0] for r in txn.query("SELECT key_id FROM msg_prekeys WHERE device_ref = ?", (ref,))}
    fresh = [(ref, key_id, public) for key_id, public in up.one_time if key_id not in existing]
    if count + len(fresh) > MAX_STORED:
        raise BadKeys("too_many_prekeys", f"a device holds at most {MAX_STORED} one-time prekeys")
    if fresh:
        txn.executemany("INSERT INTO msg_prekeys (device_ref, key_id, public_key) VALUES (?, ?, ?)", fresh)
    return count + len(fresh)


def _claim_one_time(txn: Txn, ref: int) -> tuple[dict[str, Any] | None, int]:
    """Take (and delete) the oldest one-time prekey of a device; also returns how many remain."""
    sql = "SELECT id, key_id, public_key FROM msg_prekeys WHERE device_ref = ? ORDER BY id LIMIT 1"
    if txn.engine.name == "postgres":
        sql += " FOR UPDATE SKIP LOCKED"
    row = txn.query_one(sql, (ref,))
    if row is None:
        return None, 0
    txn.execute("DELETE FROM msg_prekeys WHERE id = ?", (row[0],))
    if txn.rowcount != 1:  # cannot happen under the lock above; never hand out a key twice
        raise RuntimeError("one-time prekey vanished under its row lock")
    remaining = int(txn.scalar("SELECT COUNT(*) FROM msg_prekeys WHERE device_ref = ?", (ref,)) or 0)
    return {"key_id": int(row[1]), "public_key": row[2]}, remaining


def claim_bundles(txn: Txn, user_id: int, device_id: int | None
                  ) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    """Every device's bundle (or one device's), each with one one-time prekey if any remain.

    Returns (bundles, devices whose one-time prekeys ran low) for the owner's notification.
    """
    sql = ("SELECT id, device_id, registration_id, identity_key, signed_prekey_id, signed_prekey,"
           " signed_prekey_signature FROM msg_devices WHERE user_id = ?")
    params: tuple[Any, ...] = (user_id,)
    if device_id is not None:
        sql += " AND device_id = ?"
        params += (device_id,)
    bundles, low = [], []
    for ref, dev, reg, identity, spk_id, spk, sig in txn.query(sql + " ORDER BY device_id", params):
        one_time, remaining = _claim_one_time(txn, ref)
        if remaining < LOW_PREKEYS:
            low.append((int(dev), remaining))
        bundles.append({"device_id": int(dev), "registration_id": int(reg), "identity_key": identity,
                        "signed_prekey": {"key_id": int(spk_id), "public_key": spk, "signature": sig},
                        "one_time_prekey": one_time})
    return bundles, low


def prekey_count(txn: Txn, user_id: int, device_id: int) -> int | None:
    """One-time prekeys a device has left; None if the device is not registered."""
    ref = txn.scalar("SELECT id FROM msg_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    if ref is None:
        return None
    return int(txn.scalar("SELECT COUNT(*) FROM msg_prekeys WHERE device_ref = ?", (ref,)) or 0)


def device_ids(txn: Txn, user_id: int) -> list[int]:
    return [int(r[0]) for r in txn.query("SELECT device_id FROM msg_devices WHERE user_id = ? ORDER BY device_id",
                                         (user_id,))]


def delete_device(txn: Txn, user_id: int, device_id: int) -> bool:
    """Unregister a device: its bundle, prekeys and queued envelopes go."""
    txn.execute("DELETE FROM msg_queue WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    txn.execute("DELETE FROM msg_devices WHERE user_id = ? AND device_id = ?", (user_id, device_id))
    return txn.rowcount > 0
