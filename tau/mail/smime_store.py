"""The ``smime_keys`` and ``smime_certs`` tables (see :mod:`tau.mail.smime`).

``smime_keys``: one certificate per user with its private key, sealed by the caller (this module
never sees a key in the clear). ``smime_certs``: the certificates a user knows for other
addresses, ``source`` ``upload`` (given through the API) or ``mail`` (collected from a validly
signed message); a collected certificate never replaces an uploaded one, nor one that lasts longer.
"""

from __future__ import annotations

from collections.abc import Sequence

from tau.storage.database import Txn


def save_identity(txn: Txn, user_id: int, fingerprint: str, certificate: str, sealed_key: str,
                  not_after: int) -> None:
    """Replace the user's certificate and key."""
    txn.execute("DELETE FROM smime_keys WHERE user_id = ?", (user_id,))
    txn.execute("INSERT INTO smime_keys (user_id, fingerprint, certificate, private_key, not_after, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)", (user_id, fingerprint, certificate, sealed_key, not_after,
                                               int(txn.now)))


def identity(txn: Txn, user_id: int) -> tuple[str, str] | None:
    """(certificate PEM, sealed private key) of the user, or None."""
    row = txn.query_one("SELECT certificate, private_key FROM smime_keys WHERE user_id = ?", (user_id,))
    return (row[0], row[1]) if row else None


def delete_identity(txn: Txn, user_id: int) -> bool:
    txn.execute("DELETE FROM smime_keys WHERE user_id = ?", (user_id,))
    return txn.rowcount > 0


def certificates_for(txn: Txn, user_id: int, addresses: Sequence[str]) -> dict[str, str]:
    """Certificate PEM by lower-cased address for the ``addresses`` that have one: a local user's
    own certificate, else one ``user_id`` uploaded or collected. Two queries, whatever the count."""
    wanted = sorted({a.lower() for a in addresses})
    if not wanted:
        return {}
    marks = ", ".join("?" for _ in wanted)
    out = {str(r[0]): str(r[1]) for r in txn.query(
        f"SELECT address, certificate FROM smime_certs WHERE user_id = ? AND address IN ({marks})",
        (user_id, *wanted))}
    out.update({str(r[0]): str(r[1]) for r in txn.query(
        f"SELECT u.address, k.certificate FROM smime_keys k JOIN users u ON u.id = k.user_id"
        f" WHERE u.address IN ({marks})", wanted)})
    return out


def save_certificate(txn: Txn, user_id: int, address: str, fingerprint: str, certificate: str, source: str,
                     not_after: int) -> bool:
    """Keep ``certificate`` as ``user_id``'s certificate for ``address``; False when a collected
    (``source="mail"``) one lost to what is there (an upload, or one valid for longer)."""
    address = address.lower()
    row = txn.query_one("SELECT source, not_after, fingerprint FROM smime_certs WHERE user_id = ? AND address = ?",
                        (user_id, address))
    if row is not None and source == "mail" and (row[0] == "upload" or int(row[1]) > not_after
                                                 or row[2] == fingerprint):
        return False
    txn.execute("DELETE FROM smime_certs WHERE user_id = ? AND address = ?", (user_id, address))
    txn.execute("INSERT INTO smime_certs (user_id, address, fingerprint, certificate, source, not_after, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (user_id, address, fingerprint, certificate, source, not_after, int(txn.now)))
    return True


def certificate(txn: Txn, user_id: int, address: str) -> tuple[str, str] | None:
    """(certificate PEM, source) ``user_id`` keeps for ``address``."""
    row = txn.query_one("SELECT certificate, source FROM smime_certs WHERE user_id = ? AND address = ?",
                        (user_id, address.lower()))
    return (row[0], row[1]) if row else None


def list_certificates(txn: Txn, user_id: int, after: str, limit: int) -> list[tuple[str, str, str, int]]:
    """(address, fingerprint, source, not_after) of the first ``limit`` certificates ``user_id``
    keeps for addresses after ``after``, in address order."""
    return [(r[0], r[1], r[2], int(r[3])) for r in txn.query(
        "SELECT address, fingerprint, source, not_after FROM smime_certs WHERE user_id = ? AND address > ?"
        " ORDER BY address LIMIT ?", (user_id, after, limit))]


def delete_certificate(txn: Txn, user_id: int, address: str) -> bool:
    txn.execute("DELETE FROM smime_certs WHERE user_id = ? AND address = ?", (user_id, address.lower()))
    return txn.rowcount > 0


def user_id_of(txn: Txn, address: str) -> int | None:
    """The local user receiving at ``address`` (their own address), or None."""
    row = txn.query_one("SELECT id FROM users WHERE address = ?", (address.lower(),))
    return int(row[0]) if row else None
