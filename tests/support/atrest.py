"""Encryption at rest in tests: find plaintext in stored bytes, and make rows look like they did
before the migration that seals them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def markers_in(data: bytes, markers: Iterable[str]) -> list[str]:
    """The markers found in ``data`` as UTF-8, case-folded UTF-8 or UTF-16 (anything a
    database, a JSON dump or a compressed-then-expanded archive could hold)."""
    found = []
    for marker in markers:
        forms = {marker.encode(), marker.casefold().encode(), marker.upper().encode(),
                 marker.encode("utf-16-le"), marker.casefold().encode("utf-16-le")}
        if any(form in data for form in forms):
            found.append(marker)
    return found


def markers_in_files(paths: Iterable[Path], markers: Iterable[str]) -> dict[str, list[str]]:
    """{path: markers found} over every file under ``paths`` (directories walked, symlinks not)."""
    markers = list(markers)
    out: dict[str, list[str]] = {}
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in files:
            hit = markers_in(path.read_bytes(), markers)
            if hit:
                out[str(path)] = hit
    return out


def markers_in_archive(path: Path, markers: Iterable[str]) -> dict[str, list[str]]:
    """{member: markers found} over every member of a tar archive (any compression)."""
    import tarfile

    markers = list(markers)
    out: dict[str, list[str]] = {}
    with tarfile.open(path) as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            if f is not None:
                hit = markers_in(f.read(), markers)
                if hit:
                    out[member.name] = hit
    return out


def unseal_mail(txn: Any, keyring: Any) -> int:
    """Turn every sealed message row back into what the store wrote before encryption at rest:
    plaintext columns with ``kv`` 0, the shared ``message_text``/``message_headers``/
    ``message_sort_keys`` rows, no ``mail_content``, plaintext mailbox names (what the converter
    then has to seal)."""
    from tau.mail.store import sealed

    cols = ", ".join(sealed.COLUMNS)
    rows = txn.query(f"SELECT m.mailbox_id, m.uid, b.user_id, m.blob_key, m.kv, {cols} FROM messages m"
                     " JOIN mailboxes b ON b.id = m.mailbox_id WHERE m.kv > 0")
    for box, uid, user_id, key, kv, *values in rows:
        uk = keyring.for_user_txn(txn, int(user_id))
        plain = sealed.open_row(uk, key, int(kv), values)
        txn.execute(f"UPDATE messages SET {', '.join(c + ' = ?' for c in sealed.COLUMNS)}, kv = 0"
                    " WHERE mailbox_id = ? AND uid = ?", [*plain, box, uid])
        content = txn.query_one("SELECT body, headers, sort FROM mail_content WHERE user_id = ? AND blob_key = ?",
                                (user_id, key))
        if content is None or txn.query_one("SELECT 1 FROM message_text WHERE blob_key = ?", (key,)):
            continue
        body = sealed.open_content(uk, "body", key, content[0])
        headers = sealed.open_headers(uk, key, content[1])
        keys = json.loads(sealed.open_content(uk, "sort", key, content[2]))
        txn.execute("INSERT INTO message_text (blob_key, body) VALUES (?, ?)", (key, body))
        for i, (name, value) in enumerate(headers):
            txn.execute("INSERT INTO message_headers (blob_key, position, name, value) VALUES (?, ?, ?, ?)",
                        (key, i, name, value))
        txn.execute("INSERT INTO message_sort_keys (blob_key, subject, reply, from_mbox, to_mbox, cc_mbox,"
                    " display_from, display_to, message_id, refs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, keys[0], int(keys[1]), *keys[2:]))
    txn.execute("DELETE FROM mail_tokens")
    txn.execute("DELETE FROM mail_content")
    from tau.mail.store import boxnames

    for table in ("mailboxes", "mail_lost_subscriptions"):
        for row_id, user_id, stored, kv, sealed_name in txn.query(
                f"SELECT id, user_id, name, kv, sealed_name FROM {table} WHERE kv > 0"):
            uk = keyring.for_user_txn(txn, int(user_id))
            name = boxnames.name_of(uk, stored, int(kv), sealed_name, table)
            extra = ", parent = NULL" if table == "mailboxes" else ""
            txn.execute(f"UPDATE {table} SET name = ?, kv = 0, sealed_name = NULL{extra} WHERE id = ?", (name, row_id))
    return len(rows)
