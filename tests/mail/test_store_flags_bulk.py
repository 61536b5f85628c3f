"""Flags kept apart from the message rows (``message_flags``, issue 15): STORE, COPY, MOVE and
EXPUNGE of whole ranges keep every IMAP meaning: one MODSEQ per operation, only changed messages
take it, UNCHANGEDSINCE, the counters, flags following a message wherever it goes, and no state
row outliving its message. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tau.mail.store import MailStore, purge
from tau.mail.store.api import Search
from tests.mail.test_store_messages import ALICE, box, check_counts, raw_message
from tests.support.harness import add_user, resolve

N = 120


@pytest.fixture
def store(registry):
    add_user(registry, ALICE)
    s = MailStore(registry)
    resolve(s.ensure_defaults(ALICE))
    resolve(s.append_many(ALICE, "INBOX", [(raw_message(n=i), ("$Odd",) if i % 2 else (), None)
                                          for i in range(N)]))
    return s


def _state_rows(registry) -> int:
    return registry.db.sync.run("count", lambda txn: txn.scalar("SELECT COUNT(*) FROM message_flags"))


def _flags(store, mailbox_id):
    return {m.uid: (m.flags, m.modseq) for m in resolve(store.fetch(mailbox_id, resolve(store.uids(mailbox_id))))}


def test_a_range_store_gives_the_changed_messages_one_new_modseq(store):
    inbox = box(store).id
    resolve(store.store_flags(inbox, [5], "+", ["\\Seen"]))
    before = _flags(store, inbox)
    result = resolve(store.store_flags(inbox, list(range(1, N + 1)), "+", ["\\Seen"]))
    after = _flags(store, inbox)
    assert sorted(c.uid for c in result.changed) == [u for u in range(1, N + 1) if u != 5]
    assert {c.modseq for c in result.changed} == {box(store).highestmodseq}
    assert after[5] == before[5]  # unchanged: keeps its flags and its MODSEQ
    assert after[2] == (("\\Seen", "$Odd"), box(store).highestmodseq) and after[1][0] == ("\\Seen",)
    changed = resolve(store.changed_since(inbox, before[5][1]))
    assert [c.uid for c in changed] == [u for u in range(1, N + 1) if u != 5]
    assert box(store).unseen == 0
    check_counts(store)


def test_unchangedsince_on_a_range_refuses_only_the_newer_messages(store):
    inbox = box(store).id
    base = box(store).highestmodseq
    resolve(store.store_flags(inbox, [3, 60], "+", ["\\Flagged"]))
    result = resolve(store.store_flags(inbox, list(range(1, N + 1)), "=", ["\\Answered"], unchanged_since=base))
    assert result.modified == [3, 60] and len(result.changed) == N - 2
    flags = _flags(store, inbox)
    assert flags[3][0] == ("\\Flagged",) and flags[60][0] == ("\\Flagged", "$Odd") and flags[4][0] == ("\\Answered",)


def test_flags_follow_copies_and_moves_and_search_sees_them(store):
    inbox = box(store).id
    resolve(store.store_flags(inbox, [1, 2], "+", ["\\Deleted", "$Mark"]))
    resolve(store.copy(inbox, list(range(1, 11)), ALICE, "Archive"))
    archive = box(store, "Archive").id
    assert _flags(store, archive)[1][0] == ("\\Deleted", "$Mark")
    assert _flags(store, archive)[3][0] == ()
    assert resolve(store.search(archive, Search(("deleted",)))) == [1, 2]
    assert resolve(store.search(archive, Search(("keyword", "$odd")))) == [2, 4, 6, 8, 10]
    assert resolve(store.deleted_usage(archive))[0] == 2
    resolve(store.move(archive, [1, 2, 3], ALICE, "Trash"))
    trash = box(store, "Trash").id
    assert [f for f, _ in _flags(store, trash).values()] == [("\\Deleted", "$Mark"), ("\\Deleted", "$Mark", "$Odd"),
                                                              ()]
    assert resolve(store.uids(archive)) == list(range(4, 11))
    check_counts(store)


def test_expunged_messages_keep_their_flags_for_stale_views_and_leave_no_state_row(store, registry):
    inbox = box(store).id
    rows = _state_rows(registry)
    resolve(store.store_flags(inbox, list(range(1, 51)), "+", ["\\Deleted"]))
    assert resolve(store.expunge(inbox)) == list(range(1, 51))
    assert _state_rows(registry) == rows - 50
    gone = resolve(store.fetch_expunged(inbox, [2]))
    assert gone[0].flags == ("\\Deleted", "$Odd")
    copied = resolve(store.copy(inbox, [2, 51], ALICE, "Archive", strict=True))  # a stale view's COPY
    archive = box(store, "Archive").id
    assert [f for f, _ in _flags(store, archive).values()] == [("\\Deleted", "$Odd"), ()]
    assert len(copied.pairs) == 2
    assert resolve(store.purge_expunged(grace=-1)) == 50
    assert registry.db.sync.run("n", lambda txn: txn.scalar(f"SELECT COUNT(*) FROM {purge.TABLE}")) == 0
    check_counts(store)


def test_renaming_inbox_takes_the_flags_along_and_deleting_a_mailbox_drops_them(store, registry):
    resolve(store.store_flags(box(store).id, [7], "+", ["\\Flagged"]))
    resolve(store.rename_mailbox(ALICE, "INBOX", "Old"))
    old = box(store, "Old").id
    assert _flags(store, old)[7][0] == ("\\Flagged",) and len(_flags(store, old)) == N
    assert _flags(store, box(store).id) == {}
    assert _state_rows(registry) == N
    resolve(store.delete_mailbox(ALICE, "Old"))
    assert _state_rows(registry) == 0
    check_counts(store)


def test_a_range_store_is_one_update_per_resulting_flag_list_and_never_touches_the_message_rows(store, monkeypatch):
    inbox = box(store).id
    statements: list[str] = []
    real = type(store._registry.db.sync).run

    def counting(self, name, fn, *args, **kwargs):
        def wrapped(txn, *a, **k):
            orig_execute, orig_query = txn.execute, txn.query
            txn.execute = lambda sql, params=(): (statements.append(sql), orig_execute(sql, params))[1]
            txn.query = lambda sql, params=(): (statements.append(sql), orig_query(sql, params))[1]
            return fn(txn, *a, **k)
        return real(self, name, wrapped, *args, **kwargs)

    monkeypatch.setattr(type(store._registry.db.sync), "run", counting)
    resolve(store.store_flags(inbox, list(range(1, N + 1)), "+", ["\\Seen"]))  # two lists: "\Seen", "\Seen $Odd"
    updates = [s for s in statements if s.startswith("UPDATE")]
    assert len([s for s in updates if s.startswith("UPDATE message_flags")]) == 2
    assert not [s for s in statements if "UPDATE messages" in s or "INTO messages" in s]
