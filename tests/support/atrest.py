"""Encryption at rest, from the outside: every stored byte searched for markers a test wrote;
and rows made to look as they did before the migration that seals them (``unseal_mail``).

A marker is a string no code derives from anything else (random, lower case: case-folded
indexes would hold it lower-cased). ``leaks`` reads whole files (the SQLite database and its
``-wal``, blobs, anything else under a data directory), a ``pg_dump`` of a PostgreSQL database
and the members of a ``tau backup`` archive (decompressed), and returns where a marker appears.
"""

from __future__ import annotations

import gzip
import io
import json
import secrets
import subprocess
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def marker(label: str = "m") -> str:
    return f"zq{label}{secrets.token_hex(6)}"


def _forms(markers: Iterable[str]) -> list[bytes]:
    """UTF-8, case-folded, upper-cased and UTF-16 forms: anything a database, an index or a dump holds."""
    out: list[bytes] = []
    for m in markers:
        out += sorted({m.encode(), m.casefold().encode(), m.upper().encode(), m.encode("utf-16-le"),
                       m.casefold().encode("utf-16-le")})
    return out


def tree_bytes(root: Path) -> Iterator[tuple[str, bytes]]:
    """(path, content) of every regular file under ``root``."""
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            yield str(path), path.read_bytes()


def pg_dump_bytes(url: str) -> Iterator[tuple[str, bytes]]:
    """The whole database as ``pg_dump`` writes it (plain SQL, data and schema)."""
    result = subprocess.run(["pg_dump", "--no-owner", url], capture_output=True, timeout=120, check=True)
    yield f"pg_dump {url}", result.stdout


def archive_bytes(path: Path) -> Iterator[tuple[str, bytes]]:
    """A backup archive, compressed and member by member (members themselves gunzipped when they are)."""
    raw = path.read_bytes()
    yield str(path), raw
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tar:
        for member in tar:
            fh = tar.extractfile(member)
            if fh is None:
                continue
            data = fh.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            yield f"{path}:{member.name}", data


def leaks(markers: Iterable[str], *sources: Iterable[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """(where, marker) for every marker found in any source (empty: nothing readable)."""
    wanted = list(markers)
    forms = {f: m for m in wanted for f in _forms([m])}
    found: list[tuple[str, str]] = []
    for source in sources:
        for where, data in source:
            found += [(where, m) for f, m in forms.items() if f in data]
    return found


def markers_in(data: bytes, markers: Iterable[str]) -> list[str]:
    """The markers found in ``data``."""
    return sorted({m for _, m in leaks(markers, [("data", data)])})


def markers_in_files(paths: Iterable[Path], markers: Iterable[str]) -> dict[str, list[str]]:
    """{path: markers found} over every file under ``paths`` (a file, or a folder walked)."""
    out: dict[str, list[str]] = {}
    for root in paths:
        files = [(str(root), root.read_bytes())] if root.is_file() else tree_bytes(root)
        for where, m in leaks(list(markers), files):
            out.setdefault(where, []).append(m)
    return out


def markers_in_archive(path: Path, markers: Iterable[str]) -> dict[str, list[str]]:
    """{member: markers found} over a tar archive's members (any compression)."""
    out: dict[str, list[str]] = {}
    for where, m in leaks(list(markers), archive_bytes(path)):
        if where != str(path):
            out.setdefault(where.removeprefix(f"{path}:"), []).append(m)
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
