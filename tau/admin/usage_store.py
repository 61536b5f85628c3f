"""Storage use per account across mail and files, for ``GET /api/admin/quotas``.

A read-only report over three owners' tables (``users``, mail's ``mail_usage``, files'
``file_usage``): one query, so the admin API holds no SQL of its own.
"""

from __future__ import annotations

from typing import Any

from tau.storage.database import Txn


def quota_report(txn: Txn, default_quota: int) -> list[dict[str, Any]]:
    """Every account by address: its quota (the default when unset) and bytes used."""
    rows = txn.query("SELECT u.address, u.quota_bytes, COALESCE(m.bytes, 0), COALESCE(m.messages, 0),"
                     " COALESCE(f.bytes, 0) FROM users u LEFT JOIN mail_usage m ON m.user_id = u.id"
                     " LEFT JOIN file_usage f ON f.user_id = u.id ORDER BY u.address")
    return [{"address": r[0], "quota_bytes": default_quota if r[1] is None else int(r[1]),
             "mail_bytes": int(r[2]), "messages": int(r[3]), "file_bytes": int(r[4]),
             "used_bytes": int(r[2]) + int(r[4])} for r in rows]


def user_usage(txn: Txn, user_id: int) -> dict[str, int]:
    """One account's bytes and messages in mail and files."""
    row = txn.query_one("SELECT COALESCE((SELECT bytes FROM mail_usage WHERE user_id = ?), 0),"
                        " COALESCE((SELECT messages FROM mail_usage WHERE user_id = ?), 0),"
                        " COALESCE((SELECT bytes FROM file_usage WHERE user_id = ?), 0)", (user_id, user_id, user_id))
    mail, messages, files = (int(v) for v in (row or (0, 0, 0)))
    return {"mail_bytes": mail, "messages": messages, "file_bytes": files, "used_bytes": mail + files}
