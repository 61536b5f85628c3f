"""The message_flags migration on a database that already holds mail: every message keeps its
flags, \\Seen/\\Deleted mirrors and MODSEQ, now in the narrow table, and the store reads them."""

from __future__ import annotations

from typing import Any

import pytest

from tau.mail.store import messages, search
from tau.storage import migrate as migrate_module
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tau.storage.migrate import migrate

_MAIL = ("INSERT INTO messages (mailbox_id, uid, modseq, flags, seen, deleted, internal_date, size, blob_key,"
         " envelope, body, bodystructure, sent_date, sent_day, parsed) VALUES (?, ?, ?, ?, ?, ?, 0, 1, 'k', '', '',"
         " '', 0, 0, '')")


def _fill(txn: Any) -> None:
    txn.execute("INSERT INTO domains (name, created_at) VALUES ('example.test', 0)")
    txn.execute("INSERT INTO users (address, domain_id, created_at, password_changed_at)"
                " SELECT 'a@example.test', id, 0, 0 FROM domains")
    txn.execute("INSERT INTO mailboxes (user_id, name, uidvalidity, uidnext, highestmodseq, created_at)"
                " SELECT id, 'INBOX', 1, 4, 9, 0 FROM users")
    inbox = txn.scalar("SELECT id FROM mailboxes")
    txn.executemany(_MAIL, [(inbox, 1, 7, "\\Seen $Work", 1, 0), (inbox, 2, 3, "", 0, 0),
                            (inbox, 3, 9, "\\Deleted \\Flagged", 0, 1)])


def _columns(db: SyncDatabase, table: str) -> set[str]:
    if db.engine.name == "sqlite":
        return {r[1] for r in db.run("cols", lambda txn: txn.query(f"PRAGMA table_info({table})"))}
    return {r[0] for r in db.run("cols", lambda txn: txn.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?", (table,)))}


def test_flags_and_modseqs_move_to_the_narrow_table(fresh_databases: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = SyncDatabase(create_engine(fresh_databases.make()))
    everything = migrate_module.load_deltas
    ours = next(d.version for d in everything(db.engine.name) if d.name == "message_flags")
    with monkeypatch.context() as m:
        m.setattr(migrate_module, "load_deltas", lambda engine: [d for d in everything(engine) if d.version < ours])
        migrate(db)
    db.run("fill", _fill)
    assert "message_flags" in [d.name for d in migrate(db)]
    inbox = db.run("read", lambda txn: txn.scalar("SELECT id FROM mailboxes"))
    metas = db.run("read", messages.fetch, None, inbox, [1, 2, 3])  # rows from before: plaintext
    assert [(m.uid, m.flags, m.modseq) for m in metas] == [
        (1, ("\\Seen", "$Work"), 7), (2, (), 3), (3, ("\\Deleted", "\\Flagged"), 9)]
    assert [c.uid for c in db.run("read", messages.changed_since, inbox, 5)] == [1, 3]
    assert db.run("read", search.search, None, inbox, ("seen",)) == [1]
    assert db.run("read", search.search, None, inbox, ("deleted",)) == [3]
    assert db.run("read", search.search, None, inbox, ("keyword", "$work")) == [1]
    assert not {"modseq", "flags", "seen", "deleted"} & _columns(db, "messages")  # the wide rows: no state
    db.close()
