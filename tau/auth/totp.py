"""TOTP two-factor authentication (RFC 6238 over RFC 4226 HOTP) with one-time recovery codes.

With 2FA enabled, the account password alone no longer logs in anywhere: the token endpoint and
the consent page ask for a code as well, and protocol clients (SMTP, IMAP, DAV), which cannot
prompt for one, must use app passwords (the authenticator refuses the account password for them).
Secrets are stored encrypted (AES-256-GCM, key derived from the installation secret); a code's
time step is remembered so the same code cannot be replayed (RFC 6238 §5.2).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import struct
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tau.auth import accounts, revocation_store
from tau.storage.database import Txn

if TYPE_CHECKING:
    from tau.registry import Registry

STEP = 30
DIGITS = 6
WINDOW = 1  # accept one step either side for clock drift (RFC 6238 §5.2)
RECOVERY_CODES = 10


class TwoFactorError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def hotp(secret: bytes, counter: int, digits: int = DIGITS) -> str:
    """RFC 4226 §5.3: HMAC-SHA1, dynamic truncation."""
    digest = hmac.new(secret, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def totp(secret: bytes, at: float) -> str:
    return hotp(secret, int(at // STEP))


def new_secret() -> bytes:
    return secrets.token_bytes(20)  # 160 bits, RFC 4226 §4 R6


def otpauth_uri(secret: bytes, address: str, issuer: str = "tau") -> str:
    """The Key Uri Format authenticator apps read from a QR code."""
    b32 = base64.b32encode(secret).decode().rstrip("=")
    return (f"otpauth://totp/{quote(issuer)}:{quote(address)}?secret={b32}&issuer={quote(issuer)}"
            f"&algorithm=SHA1&digits={DIGITS}&period={STEP}")


def _aead(keys: Any) -> AESGCM:
    return AESGCM(keys.derive("totp:aes-256-gcm"))


def seal(keys: Any, secret: bytes, user_id: int) -> str:
    nonce = os.urandom(12)
    return base64.b64encode(nonce + _aead(keys).encrypt(nonce, secret, str(user_id).encode())).decode()


def unseal(keys: Any, sealed: str, user_id: int) -> bytes:
    raw = base64.b64decode(sealed)
    return _aead(keys).decrypt(raw[:12], raw[12:], str(user_id).encode())


def normalize_code(code: str) -> str:
    return "".join(c for c in (code or "") if c.isalnum()).lower()


# -- transaction functions ------------------------------------------------------------------------

def is_enabled(txn: Any, user_id: int) -> bool:
    return bool(txn.scalar("SELECT enabled FROM totp_secrets WHERE user_id = ?", (user_id,)))


def begin(txn: Any, keys: Any, address: str, enable: bool = False) -> tuple[str, list[str]]:
    """A fresh secret (pending unless ``enable``) and recovery codes; returns (uri, codes).

    Enabling it at once (the CLI) ends the user's sessions, as any change of the second factor does."""
    user = accounts.require_user(txn, address)
    if enable:
        revocation_store.revoke_user(txn, user.id)
    secret = new_secret()
    txn.execute("DELETE FROM totp_secrets WHERE user_id = ?", (user.id,))
    txn.execute("DELETE FROM totp_recovery WHERE user_id = ?", (user.id,))
    txn.execute("INSERT INTO totp_secrets (user_id, secret, enabled, last_step, created_at) VALUES (?, ?, ?, 0, ?)",
                (user.id, seal(keys, secret, user.id), int(enable), int(txn.now)))
    codes = ["-".join(secrets.token_hex(3) for _ in range(2)) for _ in range(RECOVERY_CODES)]
    for code in codes:
        txn.execute("INSERT INTO totp_recovery (user_id, code_hash) VALUES (?, ?)",
                    (user.id, keys.mac("totp-recovery", normalize_code(code))))
    return otpauth_uri(secret, user.address), codes


def disable(txn: Txn, address: str, keep_session: str | None = None) -> bool:
    """Turn 2FA off; if it was on, every session but ``keep_session`` (the one asking) ends."""
    user = accounts.require_user(txn, address)
    txn.execute("DELETE FROM totp_recovery WHERE user_id = ?", (user.id,))
    txn.execute("DELETE FROM totp_secrets WHERE user_id = ?", (user.id,))
    removed = txn.rowcount > 0
    if removed:
        revocation_store.revoke_user(txn, user.id, keep=keep_session)
    return removed


def enabled_user_ids(txn: Txn) -> set[int]:
    """Every account with 2FA switched on (the admin's user list)."""
    return {int(r[0]) for r in txn.query("SELECT user_id FROM totp_secrets WHERE enabled = 1")}


def verify(txn: Txn, keys: Any, user_id: int, code: str, now: float | None = None, pending: bool = False) -> bool:
    """A current TOTP code (each time step once) or an unused recovery code."""
    row = txn.query_one("SELECT secret, enabled, last_step FROM totp_secrets WHERE user_id = ?", (user_id,))
    if row is None or (not row[1] and not pending):
        return False
    code = normalize_code(code)
    if len(code) == DIGITS and code.isdigit():
        secret = unseal(keys, row[0], user_id)
        step = int((txn.now if now is None else now) // STEP)
        for candidate in range(step - WINDOW, step + WINDOW + 1):
            if candidate > int(row[2]) and hmac.compare_digest(hotp(secret, candidate), code):
                txn.execute("UPDATE totp_secrets SET last_step = ?, enabled = 1 WHERE user_id = ?",
                            (candidate, user_id))
                return True
        return False
    if pending or not code:
        return False
    txn.execute("UPDATE totp_recovery SET used_at = ? WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
                (int(txn.now), user_id, keys.mac("totp-recovery", code)))
    return txn.rowcount == 1


async def check_login(registry: Registry, user: Any, code: str) -> None:
    """For the token endpoint / consent page: raise TwoFactorError unless 2FA is off or ``code`` passes."""
    if not await registry.db.run("totp_enabled", is_enabled, user.id, readonly=True):
        return
    if not code:
        raise TwoFactorError("totp_required", "this account uses two-factor authentication: send the code as totp")
    if not await registry.db.run("totp_verify", verify, registry.keys, user.id, code):
        raise TwoFactorError("invalid_totp", "the one-time code is wrong or was already used")
