"""SQL for revoked sessions: the ``revoked_families`` rows every node polls (tau.auth.revocation).

A *family* is the session an access token names in its ``sid`` claim: the refresh tokens of one
login, rotated. Revoking it marks its refresh tokens revoked (they can no longer be exchanged)
and records the family with the time, so every node refuses its access tokens within seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

from tau.storage.database import Txn

_INSERT = "INSERT INTO revoked_families (family, user_id, revoked_at) VALUES (?, ?, ?) ON CONFLICT (family) DO NOTHING"



def revoke_families(txn: Txn, families: Iterable[str], user_id: int | None = None) -> None:
    """Revoke these sessions: their refresh tokens and (through the poll) their access tokens."""
    now = int(txn.now)
    for family in families:
        txn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?", (family,))
        txn.execute(_INSERT, (family, user_id, now))


def revoke_user(txn: Txn, user_id: int, keep: str | None = None) -> None:
    """Revoke every session of a user that may still hold a live access token, except ``keep``
    (the session asking, when a user changes their own settings and stays signed in).

    A family's newest refresh token outlives every access token issued with it, so the families
    with an unexpired refresh token are all that can matter.
    """
    now = int(txn.now)
    txn.execute("INSERT INTO revoked_families (family, user_id, revoked_at)"
                " SELECT DISTINCT family, user_id, CAST(? AS BIGINT) FROM refresh_tokens"
                " WHERE user_id = ? AND expires_at > ? AND family <> ? ON CONFLICT (family) DO NOTHING",
                (now, user_id, now, keep or ""))
    txn.execute("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = ? AND family <> ?", (user_id, keep or ""))


def revoked_since(txn: Txn, since: int) -> list[tuple[str, int]]:
    """(family, revoked_at) of the rows revoked at or after ``since`` (one indexed range scan)."""
    return [(str(r[0]), int(r[1])) for r in
            txn.query("SELECT family, revoked_at FROM revoked_families WHERE revoked_at >= ?", (since,))]


def purge(txn: Txn, before: int) -> int:
    """Forget revocations older than ``before``: every access token they could stop has expired."""
    txn.execute("DELETE FROM revoked_families WHERE revoked_at < ?", (before,))
    return txn.rowcount
