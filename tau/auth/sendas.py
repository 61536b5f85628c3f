"""Send-as grants: shared addresses a user may send from (issue 13, item 4).

A user may always use their own address and the aliases that deliver to them as envelope sender,
header From and Sender (``accounts.user_may_send_as``). A shared address that delivers elsewhere
(``team@`` read by several people, or a colleague's address for an assistant) needs an explicit
grant, made by an admin with ``tau user send-as add USER ADDRESS``. Only addresses of a domain
served here can be granted: tau cannot DKIM-sign for anyone else's domain.
"""

from __future__ import annotations

from tau.auth import accounts
from tau.auth.accounts import AccountError
from tau.storage.database import Txn


def grant(txn: Txn, user_address: str, address: str) -> str:
    """Let ``user_address`` send as ``address``; returns the normalised address."""
    user = accounts.require_user(txn, user_address)
    target = accounts.normalize_address(address)
    domain_id = txn.scalar("SELECT id FROM domains WHERE name = ?", (target.rsplit("@", 1)[1],))
    if domain_id is None:
        raise AccountError("domain_not_found", f"{target} is not in a domain served here")
    if accounts.user_may_send_as(txn, user, target):
        raise AccountError("send_as_exists", f"{user.address} may already send as {target}")
    txn.execute("INSERT INTO send_as (user_id, address, domain_id, created_at) VALUES (?, ?, ?, ?)",
                (user.id, target, int(domain_id), int(txn.now)))
    return target


def revoke(txn: Txn, user_address: str, address: str) -> str:
    user = accounts.require_user(txn, user_address)
    target = accounts.normalize_address(address)
    txn.execute("DELETE FROM send_as WHERE user_id = ? AND address = ?", (user.id, target))
    if txn.rowcount == 0:
        raise AccountError("send_as_not_found", f"{user.address} has no send-as grant for {target}")
    return target


def list_grants(txn: Txn, user_address: str | None = None) -> list[dict[str, object]]:
    """Grants of one user, or of everyone; ordered by user then address."""
    sql = ("SELECT u.address, s.address, s.created_at FROM send_as s JOIN users u ON u.id = s.user_id")
    if user_address:
        user = accounts.require_user(txn, user_address)
        rows = txn.query(sql + " WHERE s.user_id = ? ORDER BY s.address", (user.id,))
    else:
        rows = txn.query(sql + " ORDER BY u.address, s.address")
    return [{"user": r[0], "address": r[1], "created_at": int(r[2])} for r in rows]
