"""The ``pgp_keys`` table: one OpenPGP key per user (public, and the passphrase-protected private
half when uploaded), found by address or by its Web Key Directory hash (see :mod:`tau.mail.pgp`)."""

from __future__ import annotations

from tau.storage.database import Txn


def save_key(txn: Txn, user_id: int, fingerprint: str, public: str, private: str | None, wkd: str) -> None:
    """Replace the user's key."""
    txn.execute("DELETE FROM pgp_keys WHERE user_id = ?", (user_id,))
    txn.execute("INSERT INTO pgp_keys (user_id, fingerprint, public_key, private_key, wkd_hash, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (user_id, fingerprint, public, private, wkd, int(txn.now)))


def keys_of(txn: Txn, addresses: list[str]) -> dict[str, tuple[str, str | None]]:
    """(public, private or None) by lower-cased address, for the addresses that have a key."""
    out = {}
    for address in addresses:
        row = txn.query_one("SELECT k.public_key, k.private_key FROM pgp_keys k JOIN users u ON u.id = k.user_id"
                            " WHERE u.address = ?", (address.lower(),))
        if row:
            out[address.lower()] = (row[0], row[1])
    return out


def by_wkd_hash(txn: Txn, digest: str) -> list[tuple[str, str]]:
    """(address, public key) of every key whose local part hashes to ``digest``."""
    return [(r[0], r[1]) for r in txn.query("SELECT u.address, k.public_key FROM pgp_keys k JOIN users u"
                                            " ON u.id = k.user_id WHERE k.wkd_hash = ?", (digest,))]
