"""GDPR tooling: ``tau user export USER OUT.tar.gz`` and ``tau user delete --purge``.

Export (Art. 15/20, a portable copy): the account as JSON, every mail folder as an mboxrd file,
every calendar as one ``.ics``, the file tree as files, and messenger metadata (conversations,
members, message ids and times — E2E ciphertext is not the server's to hand out). Contents are
decrypted on the way out, streamed through temporary files, never held whole in memory.

Purge (Art. 17): one transaction drops the user's blob references and rows — including the rows
``ON DELETE SET NULL`` would otherwise keep (messages they sent in conversations, their outbound
queue) — then the blobs nothing references any more are deleted from the blob store: mail
(``mail_blobs`` refcounts, with their text/header index rows) and files (``file_blobs``).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Iterator
from typing import IO, Any

from tau.auth import accounts

_SAFE = re.compile(r"[^A-Za-z0-9._@+ -]+")


def _safe(name: str) -> str:
    return _SAFE.sub("_", name).strip(". ") or "_"


def _stores(config: Any) -> tuple[Any, Any]:
    """Blocking blob stores for mail and files (same backend, their own address keys)."""
    from tau.blobs.factory import create_backend
    from tau.blobs.store import SyncBlobStore
    from tau.keys import Keys, load_secret

    keys = Keys(load_secret(config.data_path(config.tau.secret_file)))
    backend = create_backend(config)
    return (SyncBlobStore(backend, keys.blob_master_key, keys.blob_address_key),
            SyncBlobStore(backend, keys.blob_master_key, keys.derive("files:blob-address")))


def _add_file(tar: tarfile.TarFile, name: str, fh: IO[bytes], mtime: int) -> None:
    size = fh.seek(0, 2)
    fh.seek(0)
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o600
    tar.addfile(info, fh)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    _add_file(tar, name, io.BytesIO(data), mtime)


def _mbox_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """mboxrd quoting (RFC 4155 + ``>From`` escaping), CRLF → LF, line by line."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *lines, rest = rest.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r") + b"\n"
    if rest:
        yield rest.rstrip(b"\r") + b"\n"


def _quote(line: bytes) -> bytes:
    return b">" + line if re.match(rb"^>*From ", line) else line


def export_user(config: Any, db: Any, address: str, out: str) -> dict[str, int]:
    """Write the user's archive; returns counts per kind."""
    mail, files = _stores(config)
    user = db.run("export_user", accounts.require_user, address, readonly=True)
    now = int(time.time())
    counts = {"folders": 0, "messages": 0, "calendars": 0, "events": 0, "files": 0, "conversations": 0}
    with tarfile.open(out + ".partial", "w|gz") as tar:
        info = user.public()
        info["aliases"] = [a["address"] for a in db.run("aliases", accounts.list_aliases, None, readonly=True)
                           if a["destination"] == user.address]
        info["app_passwords"] = db.run("app_pw", accounts.list_app_passwords, user.address, readonly=True)
        _add_bytes(tar, "account.json", json.dumps(info, indent=1).encode(), now)
        boxes = db.run("boxes", lambda t: t.query("SELECT id, name FROM mailboxes WHERE user_id = ? ORDER BY name",
                                                  (user.id,)), readonly=True)
        for box_id, name in boxes:
            rows = db.run("msgs", lambda t, b=box_id: t.query(
                "SELECT blob_key, internal_date FROM messages WHERE mailbox_id = ? ORDER BY uid", (b,)), readonly=True)
            with tempfile.TemporaryFile() as fh:
                for key, date in rows:
                    fh.write(b"From MAILER-DAEMON " + time.asctime(time.gmtime(int(date))).encode() + b"\n")
                    for line in _mbox_lines(mail.open(key)):
                        fh.write(_quote(line))
                    fh.write(b"\n")
                    counts["messages"] += 1
                _add_file(tar, f"mail/{_safe(name)}.mbox", fh, now)
            counts["folders"] += 1
        calendars = db.run("cals", lambda t: t.query("SELECT id, name FROM cal_calendars WHERE user_id = ?"
                                                     " ORDER BY name", (user.id,)), readonly=True)
        for cal_id, name in calendars:
            objects = db.run("objs", lambda t, c=cal_id: t.query(
                "SELECT data FROM cal_objects WHERE calendar_id = ? ORDER BY id", (c,)), readonly=True)
            _add_bytes(tar, f"calendars/{_safe(name)}.ics", merge_ics([o[0] for o in objects]).encode(), now)
            counts["calendars"] += 1
            counts["events"] += len(objects)
        nodes = db.run("nodes", lambda t: t.query("SELECT id, parent_id, name, kind, blob_key, modified_at"
                                                  " FROM file_nodes WHERE user_id = ?", (user.id,)), readonly=True)
        by_id = {n[0]: n for n in nodes}

        def path_of(node: tuple[Any, ...]) -> str:
            parts = []
            while node is not None and node[1] is not None:
                parts.append(_safe(node[2]))
                node = by_id.get(node[1])
            return "/".join(reversed(parts))

        for node in nodes:
            if node[3] != "folder" and node[4]:
                with tempfile.TemporaryFile() as fh:
                    for chunk in files.open(node[4]):
                        fh.write(chunk)
                    _add_file(tar, f"files/{path_of(node)}", fh, int(node[5]))
                counts["files"] += 1
        convs = db.run("convs", _conversations, user.id, readonly=True)
        counts["conversations"] = len(convs)
        _add_bytes(tar, "messenger/conversations.json", json.dumps(convs, indent=1).encode(), now)
    import os

    os.replace(out + ".partial", out)
    return counts


def merge_ics(objects: list[str]) -> str:
    """One VCALENDAR with the components (and time zones, once) of every stored object."""
    body: list[str] = []
    zones: dict[str, str] = {}
    for data in objects:
        lines = data.replace("\r\n", "\n").split("\n")
        inner, depth, block, tzid = [], 0, [], None
        for line in lines:
            if line.startswith("BEGIN:") and line != "BEGIN:VCALENDAR":
                depth += 1
            if depth:
                block.append(line)
                if depth == 1 and line.startswith("TZID:") and block[0] == "BEGIN:VTIMEZONE":
                    tzid = line
            if line.startswith("END:") and line != "END:VCALENDAR":
                depth -= 1
                if depth == 0:
                    if block[0] == "BEGIN:VTIMEZONE":
                        zones.setdefault(tzid or str(len(zones)), "\r\n".join(block))
                    else:
                        inner.append("\r\n".join(block))
                    block, tzid = [], None
        body.extend(inner)
    parts = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//tau//export//EN", *zones.values(), *body, "END:VCALENDAR"]
    return "\r\n".join(parts) + "\r\n"


def _conversations(txn: Any, user_id: int) -> list[dict[str, Any]]:
    out = []
    for cid, kind, title, created in txn.query(
            "SELECT c.id, c.kind, c.title, c.created_at FROM msg_conversations c JOIN msg_members m"
            " ON m.conversation_id = c.id WHERE m.user_id = ? ORDER BY c.id", (user_id,)):
        members = [r[0] for r in txn.query("SELECT u.address FROM msg_members m JOIN users u ON u.id = m.user_id"
                                           " WHERE m.conversation_id = ? ORDER BY u.address", (cid,))]
        messages = [{"id": r[0], "created_at": r[1], "from_me": r[2] == user_id}
                    for r in txn.query("SELECT id, created_at, sender_id FROM msg_messages WHERE conversation_id = ?"
                                       " ORDER BY id", (cid,))]
        out.append({"id": cid, "kind": kind, "title": title, "created_at": created, "members": members,
                    "messages": messages})
    return out


# -- purge ------------------------------------------------------------------------------------------

def _purge_rows(txn: Any, address: str) -> list[str]:
    """Delete the user and everything that names them; returns mail blob keys left unreferenced."""
    from tau.mail.store.blobrefs import drop_refs

    user = accounts.require_user(txn, address)
    keys = [r[0] for r in txn.query("SELECT m.blob_key FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                                    " WHERE b.user_id = ?", (user.id,))]
    keys += [r[0] for r in txn.query("SELECT blob_key FROM outbound_queue WHERE user_id = ?"
                                     " AND status IN ('queued', 'sending')", (user.id,))]
    orphans = drop_refs(txn, keys) if keys else []
    txn.execute("DELETE FROM outbound_queue WHERE user_id = ?", (user.id,))
    txn.execute("DELETE FROM msg_messages WHERE sender_id = ?", (user.id,))
    txn.execute("DELETE FROM msg_conversations WHERE created_by = ? AND NOT EXISTS (SELECT 1 FROM msg_members m"
                " WHERE m.conversation_id = msg_conversations.id AND m.user_id <> ?)", (user.id, user.id))
    txn.execute("UPDATE msg_conversations SET created_by = NULL WHERE created_by = ?", (user.id,))
    accounts.delete_user(txn, user.address)  # cascades: mailboxes, messages, files, calendars, tokens...
    return orphans


def purge_user(config: Any, db: Any, address: str) -> dict[str, int]:
    """Delete every trace of ``address``; returns how many blobs went."""
    from tau.files.blobrefs import collect_orphans
    from tau.mail.store.blobrefs import collect, unreferenced
    from tau.mail.store.context import StoreContext

    mail, files = _stores(config)
    orphans = db.run("purge_user", _purge_rows, address)
    ctx = StoreContext(blobs=mail, bus=None, default_quota=0)
    mail_deleted = len(db.run("purge_mail_blobs", collect, ctx, orphans)) if orphans else 0
    leftover = db.run("purge_unreferenced", unreferenced, 10_000, readonly=True)
    if leftover:
        mail_deleted += len(db.run("purge_mail_sweep", collect, ctx, leftover))
    file_deleted = 0
    while True:
        n = db.run("purge_file_blobs", collect_orphans, files)
        file_deleted += n
        if n < 1000:
            break
    return {"mail_blobs": mail_deleted, "file_blobs": file_deleted}
