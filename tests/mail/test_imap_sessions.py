"""Several sessions on one mailbox (RFC 3501 §2.3.1.2, §5.2, §7.4.1): consistent UIDs, EXPUNGE
only where it may renumber (never during FETCH, STORE or SEARCH), EXISTS for new mail, flag
changes by others reported once and own changes never echoed."""

from __future__ import annotations

import re

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    for i in range(1, 6):
        e.append(ALICE, message(i))
    return e


def uid_map(c) -> list[int]:
    """UIDs by sequence number, ignoring unsolicited responses mixed in."""
    out = []
    for line in c.ok("u UID FETCH 1:* UID"):
        m = re.fullmatch(r"\* (\d+) FETCH \(UID (\d+)\)", line)
        if m:
            assert int(m.group(1)) == len(out) + 1
            out.append(int(m.group(2)))
    return out


def test_expunge_is_held_back_during_fetch_store_search(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    a.ok("x STORE 2 +FLAGS.SILENT (\\Deleted)")
    assert a.cmd("y EXPUNGE") == ["* 2 EXPUNGE", "y OK Expunge completed"]
    # b still numbers the messages as before, and still reads the expunged one (as Dovecot does)
    assert b.ok("f FETCH 1:5 UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)", "* 3 FETCH (UID 3)",
                                       "* 4 FETCH (UID 4)", "* 5 FETCH (UID 5)"]
    assert b.ok("s STORE 3 +FLAGS (\\Seen)") == ["* 3 FETCH (FLAGS (\\Seen))"]
    assert b.ok("q SEARCH ALL") == ["* SEARCH 1 3 4 5"]
    # ... until a command that may renumber
    assert b.ok("n NOOP") == ["* 2 EXPUNGE"]
    assert b.ok("g FETCH 1:* UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 4)",
                                       "* 4 FETCH (UID 5)"]
    assert uid_map(a) == uid_map(b) == [1, 3, 4, 5]


def test_uid_commands_may_expunge(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    a.ok("x STORE 1,3 +FLAGS.SILENT (\\Deleted)")
    a.ok("y EXPUNGE")
    assert b.ok("f UID FETCH 4 UID") == ["* 3 EXPUNGE", "* 1 EXPUNGE", "* 2 FETCH (UID 4)"]


def test_new_messages_are_announced_during_fetch(env):
    a = env.client(ALICE, mailbox="INBOX")
    env.append(ALICE, message(6))
    assert a.ok("f FETCH 1 UID") == ["* 6 EXISTS", "* 1 FETCH (UID 1)"]
    assert a.ok("g FETCH 6 UID") == ["* 6 FETCH (UID 6)"]


def test_expunge_and_new_mail_together(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    b.ok("x STORE 5 +FLAGS.SILENT (\\Deleted)")
    b.ok("y EXPUNGE")
    env.append(ALICE, message(6))
    # during FETCH: the expunged message keeps its number, the new one is counted after it
    assert a.ok("f FETCH 1 UID") == ["* 6 EXISTS", "* 1 FETCH (UID 1)"]
    assert a.ok("n NOOP") == ["* 5 EXPUNGE"]
    assert uid_map(a) == uid_map(b) == [1, 2, 3, 4, 6]


def test_flag_changes_reported_to_others_not_echoed(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    assert a.ok("s STORE 2 +FLAGS (\\Flagged)") == ["* 2 FETCH (FLAGS (\\Flagged))"]
    assert a.ok("n NOOP") == []  # own change: already told
    assert b.ok("n NOOP") == ["* 2 FETCH (UID 2 FLAGS (\\Flagged))"]
    assert b.ok("m NOOP") == []  # reported once


def test_consistent_uids_under_interleaving(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    a.send(b"x APPEND INBOX {10+}\r\nSubject: 1\r\n")
    b.ok("m MOVE 1 Trash")
    a.ok("d UID STORE 3 +FLAGS.SILENT (\\Deleted)")
    b.ok("e UID EXPUNGE 3")
    env.append(ALICE, message(7))
    for c in (a, b):
        c.ok("n NOOP")
    assert uid_map(a) == uid_map(b) == [2, 4, 5, 6, 7]
    assert a.ok("s SEARCH ALL") == b.ok("s SEARCH ALL") == ["* SEARCH 1 2 3 4 5"]


def test_deleted_mailbox_under_a_session(env):
    env.client(ALICE).ok("c CREATE Box")
    env.append(ALICE, message(1), mailbox="Box")
    a = env.client(ALICE, mailbox="Box")
    env.client(ALICE).ok("d DELETE Box")
    assert a.ok("n NOOP") == ["* 1 EXPUNGE"]
    assert a.ok("f FETCH 1:* UID") == []


def test_new_message_changed_later_is_reported(env):
    a = env.client(ALICE, mailbox="INBOX")
    b = env.client(ALICE, mailbox="INBOX")
    env.append(ALICE, message(6))
    assert a.ok("n NOOP") == ["* 6 EXISTS"]
    b.ok("s UID STORE 6 +FLAGS.SILENT (\\Answered)")
    b.ok("t STORE 1 +FLAGS.SILENT (\\Seen)")
    env.append(ALICE, message(7))
    assert a.ok("m NOOP") == ["* 7 EXISTS", "* 1 FETCH (UID 1 FLAGS (\\Seen))",
                              "* 6 FETCH (UID 6 FLAGS (\\Answered))"]


def test_append_in_sequence_needs_no_flag_query(env, monkeypatch):
    a = env.client(ALICE, mailbox="INBOX")
    calls = []
    real = env.store.changed_since

    async def counting(mailbox_id, modseq, **kw):
        calls.append(modseq)
        return await real(mailbox_id, modseq, **kw)

    monkeypatch.setattr(env.store, "changed_since", counting)
    env.append(ALICE, message(6))
    env.append(ALICE, message(7))
    assert a.ok("n FETCH 7 UID") == ["* 7 EXISTS", "* 7 FETCH (UID 7)"]
    assert calls == []
    env.client(ALICE, mailbox="INBOX").ok("s STORE 1 +FLAGS.SILENT (\\Seen)")
    calls.clear()  # (the other session's own query)
    env.append(ALICE, message(8))  # after an unreported flag change: must query
    assert a.ok("m FETCH 8 UID") == ["* 8 EXISTS", "* 1 FETCH (UID 1 FLAGS (\\Seen))", "* 8 FETCH (UID 8)"]
    assert len(calls) == 1
