"""The ``pgp_keys`` table: one OpenPGP key per user (public, and the passphrase-protected private
half when uploaded), found by address or by its Web Key Directory hash (see :mod:`tau.mail.pgp`).

The private half is sealed at rest under the owner's data key (issue 16: its user-id packets are
not covered by the passphrase); ``kv`` is the key version, 0 a row from before, sealed by
``PgpTable`` in the background. The public half stays readable: Web Key Directory publishes it.
"""

from __future__ import annotations

from base64 import b64decode, b64encode

from tau.atrest.keyring import Keyring
from tau.atrest.store import active_version_sql
from tau.storage.database import Txn


def _context(user_id: int) -> str:
    return f"pgp_keys.private_key|{user_id}"


def _open(txn: Txn, keyring: Keyring, user_id: int, kv: int, stored: str | None) -> str | None:
    if stored is None or not kv:
        return stored
    return keyring.for_user_txn(txn, user_id).open_text(_context(user_id), b64decode(stored))


def _seal(txn: Txn, keyring: Keyring, user_id: int, private: str | None) -> tuple[str | None, int]:
    uk = keyring.for_user_txn(txn, user_id)
    if private is None:
        return None, uk.version
    return b64encode(uk.seal(_context(user_id), private)).decode("ascii"), uk.version


def save_key(txn: Txn, keyring: Keyring, user_id: int, fingerprint: str, public: str, private: str | None,
             wkd: str) -> None:
    """Replace the user's key."""
    sealed, kv = _seal(txn, keyring, user_id, private)
    txn.execute("DELETE FROM pgp_keys WHERE user_id = ?", (user_id,))
    txn.execute("INSERT INTO pgp_keys (user_id, fingerprint, public_key, private_key, wkd_hash, updated_at, kv)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", (user_id, fingerprint, public, sealed, wkd, int(txn.now), kv))


def keys_of(txn: Txn, keyring: Keyring, addresses: list[str]) -> dict[str, tuple[str, str | None]]:
    """(public, private or None) by lower-cased address, for the addresses that have a key."""
    out = {}
    for address in addresses:
        row = txn.query_one("SELECT k.public_key, k.private_key, k.user_id, k.kv FROM pgp_keys k"
                            " JOIN users u ON u.id = k.user_id WHERE u.address = ?", (address.lower(),))
        if row:
            out[address.lower()] = (row[0], _open(txn, keyring, int(row[2]), int(row[3]), row[1]))
    return out


def by_wkd_hash(txn: Txn, digest: str) -> list[tuple[str, str]]:
    """(address, public key) of every key whose local part hashes to ``digest``."""
    return [(r[0], r[1]) for r in txn.query("SELECT u.address, k.public_key FROM pgp_keys k JOIN users u"
                                            " ON u.id = k.user_id WHERE k.wkd_hash = ?", (digest,))]


_STALE = f"k.kv = 0 OR k.kv < {active_version_sql('k.user_id')}"


class PgpTable:
    """The ``AtRestTable`` of uploaded OpenPGP private keys."""

    name = "pgp"

    def pending(self, txn: Txn) -> int:
        return int(txn.scalar(f"SELECT COUNT(*) FROM pgp_keys k WHERE k.private_key IS NOT NULL AND ({_STALE})"))

    def convert(self, txn: Txn, keyring: Keyring, limit: int) -> int:
        rows = txn.query(f"SELECT k.user_id, k.kv, k.private_key FROM pgp_keys k"
                         f" WHERE k.private_key IS NOT NULL AND ({_STALE}) LIMIT ?", (int(limit),))
        for user_id, kv, stored in rows:
            sealed, version = _seal(txn, keyring, int(user_id), _open(txn, keyring, int(user_id), int(kv), stored))
            txn.execute("UPDATE pgp_keys SET private_key = ?, kv = ? WHERE user_id = ? AND kv = ?",
                        (sealed, version, user_id, kv))
        return len(rows)
