"""Accounts as the store sees them, and quota: ``[limits] quota_bytes`` or the user's own.

Usage lives in ``mail_usage`` and changes in the same transaction as the messages, with an
``UPDATE ... RETURNING`` whose row lock serialises concurrent deliveries to one user, so two
messages that each fit cannot together overshoot the quota. RFC 9208 semantics: a message is
refused when it would take usage above the limit; removing mail always succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass

from tau.auth.accounts import get_user
from tau.mail.store.api import MailStoreError, QuotaExceeded
from tau.storage.database import Txn


class UnknownUser(MailStoreError):
    """No (enabled or disabled) user by that address."""

    code = "user_not_found"


@dataclass(frozen=True)
class Account:
    id: int
    address: str
    quota: int  # effective limit in bytes; 0 = unlimited


def effective_quota(default_quota: int, user_quota: int | None) -> int:
    """The user's own ``users.quota_bytes`` when set, else the configured default; 0 = none."""
    if user_quota is not None:
        return max(int(user_quota), 0)
    return max(int(default_quota or 0), 0)


def find_account(txn: Txn, address: str, default_quota: int) -> Account | None:
    try:
        user = get_user(txn, address)
    except (AttributeError, TypeError):  # not an address at all
        return None
    if user is None:
        return None
    return Account(user.id, user.address, effective_quota(default_quota, user.quota_bytes))


def require_account(txn: Txn, address: str, default_quota: int) -> Account:
    acct = find_account(txn, address, default_quota)
    if acct is None:
        raise UnknownUser(f"no user {address}")
    return acct


def ensure_usage(txn: Txn, user_id: int) -> None:
    txn.execute("INSERT INTO mail_usage (user_id) VALUES (?) ON CONFLICT (user_id) DO NOTHING", (user_id,))


def charge(txn: Txn, acct: Account, delta_bytes: int, delta_messages: int) -> int:
    """Apply a usage change; raises QuotaExceeded (rolling the transaction back) when growth
    would pass the quota. Returns the new byte count."""
    sql = ("UPDATE mail_usage SET bytes = bytes + ?, messages = messages + ? WHERE user_id = ?"
           " RETURNING bytes")
    row = txn.query_one(sql, (delta_bytes, delta_messages, acct.id))
    if row is None:
        ensure_usage(txn, acct.id)
        row = txn.query_one(sql, (delta_bytes, delta_messages, acct.id))
    used = int(row[0]) if row else 0
    if delta_bytes > 0 and acct.quota and used > acct.quota:
        raise QuotaExceeded(f"{acct.address} is over quota ({used - delta_bytes} of {acct.quota} bytes used,"
                            f" message needs {delta_bytes})")
    return used


def usage(txn: Txn, address: str, default_quota: int) -> tuple[int, int]:
    """(bytes used, quota bytes or 0)."""
    acct = require_account(txn, address, default_quota)
    used = txn.scalar("SELECT bytes FROM mail_usage WHERE user_id = ?", (acct.id,))
    return int(used or 0), acct.quota


def usage_detail(txn: Txn, address: str, default_quota: int) -> dict[str, int]:
    """Bytes, messages and quota (REST/CLI display; RFC 9208 STORAGE and MESSAGE resources)."""
    acct = require_account(txn, address, default_quota)
    row = txn.query_one("SELECT bytes, messages FROM mail_usage WHERE user_id = ?", (acct.id,))
    return {"bytes": int(row[0]) if row else 0, "messages": int(row[1]) if row else 0, "quota": acct.quota}
