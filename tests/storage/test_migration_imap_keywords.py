"""The IMAP keywords / \\Recent migration on a database that already holds mail: keywords already on
messages become the mailbox's keyword list, and mail already there is not \\Recent."""

from __future__ import annotations

from typing import Any

import pytest

from tau.storage import migrate as migrate_module
from tau.storage.database import SyncDatabase
from tau.storage.engines import create_engine
from tau.storage.migrate import migrate

_MAIL = ("INSERT INTO messages (mailbox_id, uid, modseq, flags, internal_date, size, blob_key, envelope, body,"
         " bodystructure, sent_date, sent_day, parsed) VALUES (?, ?, 1, ?, 0, 1, 'k', '', '', '', 0, 0, '')")


def _fill(txn: Any) -> None:
    txn.execute("INSERT INTO domains (name, created_at) VALUES ('example.test', 0)")
    txn.execute("INSERT INTO users (address, domain_id, created_at, password_changed_at)"
                " SELECT 'a@example.test', id, 0, 0 FROM domains")
    for name in ("INBOX", "Other"):
        txn.execute("INSERT INTO mailboxes (user_id, name, uidvalidity, uidnext, created_at)"
                    " SELECT id, ?, 1, 4, 0 FROM users", (name,))
    inbox, other = (txn.scalar("SELECT id FROM mailboxes WHERE name = ?", (n,)) for n in ("INBOX", "Other"))
    txn.executemany(_MAIL, [(inbox, 1, "\\Seen $Work Later"), (inbox, 2, ""), (inbox, 3, "\\Flagged later $work"),
                            (other, 1, "Elsewhere")])


def test_keywords_on_messages_are_backfilled_and_old_mail_is_not_recent(
        fresh_databases: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    db = SyncDatabase(create_engine(fresh_databases.make()))
    everything = migrate_module.load_deltas
    ours = next(d.version for d in everything(db.engine.name) if d.name == "imap_keywords_recent")
    with monkeypatch.context() as m:
        m.setattr(migrate_module, "load_deltas", lambda engine: [d for d in everything(engine) if d.version < ours])
        migrate(db)
    db.run("fill", _fill)
    assert "imap_keywords_recent" in [d.name for d in migrate(db)]
    rows = db.run("read", lambda txn: txn.query(
        "SELECT b.name, k.folded FROM mailbox_keywords k JOIN mailboxes b ON b.id = k.mailbox_id"
        " ORDER BY b.name, k.folded"))
    assert [tuple(r) for r in rows] == [("INBOX", "$work"), ("INBOX", "later"), ("Other", "elsewhere")]
    marks = db.run("read", lambda txn: txn.query("SELECT recent_uid FROM mailboxes"))
    assert [r[0] for r in marks] == [4, 4]
    db.close()
