"""STORE (.SILENT, UNCHANGEDSINCE), COPY/MOVE with COPYUID, EXPUNGE / UID EXPUNGE, CLOSE,
UNSELECT, CHECK (RFC 3501 §6.4, RFC 4315, RFC 6851, RFC 3691, RFC 7162 §3.1.3)."""

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


def test_store_modes(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a STORE 1 +FLAGS (\\Seen $Work)")[-1] == "* 1 FETCH (FLAGS (\\Seen $Work))"  # after * FLAGS
    assert c.ok("b STORE 1 -FLAGS ($Work)") == ["* 1 FETCH (FLAGS (\\Seen))"]
    assert c.ok("c STORE 1 FLAGS (\\Flagged \\draft)") == ["* 1 FETCH (FLAGS (\\Flagged \\Draft))"]
    assert c.ok("d STORE 2:3 +FLAGS \\Answered") == ["* 2 FETCH (FLAGS (\\Answered))",
                                                     "* 3 FETCH (FLAGS (\\Answered))"]


def test_store_reports_unchanged_messages_too(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS (\\Seen)")
    assert c.ok("b STORE 1:2 +FLAGS (\\Seen)") == ["* 1 FETCH (FLAGS (\\Seen))", "* 2 FETCH (FLAGS (\\Seen))"]


def test_store_silent(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a STORE 1:3 +FLAGS.SILENT (\\Seen)") == []
    assert c.ok("b FETCH 1:3 FLAGS") == [f"* {i} FETCH (FLAGS (\\Seen))" for i in (1, 2, 3)]


def test_uid_store_includes_uid(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a UID STORE 4 +FLAGS (\\Flagged)") == ["* 4 FETCH (UID 4 FLAGS (\\Flagged))"]


def test_store_bad_flags(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a STORE 1 +FLAGS (\\Bogus)")[-1].startswith("a BAD")
    assert c.cmd("b STORE 1 +FLAGS (\\*)")[-1].startswith("b BAD")
    assert c.cmd("c STORE 1 +KEYWORDS (x)")[-1].startswith("c BAD")
    assert c.ok("d STORE 1 +FLAGS (\\Recent)") == ["* 1 FETCH (FLAGS ())"]  # ignored: server-only flag


def test_store_unchangedsince(env):
    c = env.client(ALICE, mailbox="INBOX")
    modseqs = {int(m.group(1)): int(m.group(2)) for m in  # (after "* OK [HIGHESTMODSEQ n]", RFC 7162 §3.1)
               (re.search(r"\* (\d+) FETCH \(MODSEQ \((\d+)\)\)", x) for x in c.ok("a FETCH 1:2 (MODSEQ)")) if m}
    assert len(modseqs) == 2
    c.ok("b STORE 2 +FLAGS (\\Seen)")  # bumps message 2 past its old modseq
    lines = c.cmd(f"c STORE 1:2 (UNCHANGEDSINCE {max(modseqs.values())}) +FLAGS (\\Flagged)")
    assert lines[-1] == "c OK [MODIFIED 2] Conditional STORE failed"
    assert lines[0].startswith("* 1 FETCH (FLAGS (\\Flagged) MODSEQ (")
    uid_lines = c.cmd(f"d UID STORE 1:2 (UNCHANGEDSINCE {max(modseqs.values())}) -FLAGS.SILENT (\\Flagged)")
    assert uid_lines[-1] == "d OK [MODIFIED 1:2] Conditional STORE failed"


def test_copy_with_copyuid(env):
    c = env.client(ALICE, mailbox="INBOX")
    line = c.cmd("a COPY 2:3 Archive")[-1]
    m = re.fullmatch(r"a OK \[COPYUID (\d+) 2:3 1:2\] COPY completed", line)
    assert m
    assert "MESSAGES 2" in c.ok("b STATUS Archive (MESSAGES)")[0]
    assert re.fullmatch(r"c OK \[COPYUID \d+ 1,5 3:4\] UID COPY completed", c.cmd("c UID COPY 5,1 Archive")[-1])
    assert "MESSAGES 4" in c.ok("d STATUS Archive (MESSAGES)")[0]
    assert c.ok("e FETCH 1:* UID") == [f"* {i} FETCH (UID {i})" for i in range(1, 6)]


def test_copy_to_missing_mailbox_is_trycreate(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a COPY 1 Nowhere")[-1] == "a NO [TRYCREATE] Mailbox doesn't exist"
    assert c.cmd("b MOVE 1 Nowhere")[-1] == "b NO [TRYCREATE] Mailbox doesn't exist"


def test_copy_into_the_selected_mailbox_reports_exists(env):
    c = env.client(ALICE, mailbox="INBOX")
    lines = c.cmd("a COPY 1 INBOX")
    assert lines[0] == "* 6 EXISTS"
    assert lines[-1].startswith("a OK [COPYUID ") and " 1 6] " in lines[-1]


def test_move(env):
    c = env.client(ALICE, mailbox="INBOX")
    lines = c.cmd("a MOVE 2:3 Trash")
    assert re.fullmatch(r"\* OK \[COPYUID \d+ 2:3 1:2\] Moved", lines[0])
    assert lines[1:] == ["* 3 EXPUNGE", "* 2 EXPUNGE", "a OK MOVE completed"]
    assert c.ok("b FETCH 1:* UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 4)", "* 3 FETCH (UID 5)"]
    lines = c.cmd("c UID MOVE 5 Trash")
    assert lines[1:] == ["* 3 EXPUNGE", "c OK UID MOVE completed"]
    assert "MESSAGES 3" in c.ok("d STATUS Trash (MESSAGES)")[0]


def test_expunge(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 2,4 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("b EXPUNGE") == ["* 4 EXPUNGE", "* 2 EXPUNGE", "b OK Expunge completed"]
    assert c.ok("c FETCH 1:* UID") == ["* 1 FETCH (UID 1)", "* 2 FETCH (UID 3)", "* 3 FETCH (UID 5)"]
    assert c.cmd("d EXPUNGE") == ["d OK Expunge completed"]


def test_uid_expunge_only_touches_the_set(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("b UID EXPUNGE 2:3") == ["* 3 EXPUNGE", "* 2 EXPUNGE", "b OK UID EXPUNGE completed"]
    assert c.ok("c FETCH 1 (UID FLAGS)") == ["* 1 FETCH (UID 1 FLAGS (\\Deleted))"]


def test_close_expunges_silently(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("b CLOSE") == ["b OK Close completed"]
    assert c.proto.selected is None
    assert "MESSAGES 4" in c.ok("c STATUS INBOX (MESSAGES)")[0]


def test_close_after_examine_keeps_deleted(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("b EXAMINE INBOX")
    c.ok("c CLOSE")
    assert "MESSAGES 5" in c.ok("d STATUS INBOX (MESSAGES)")[0]


def test_unselect_keeps_deleted(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    assert c.cmd("b UNSELECT") == ["b OK Unselect completed"]
    assert c.cmd("c FETCH 1 FLAGS")[-1] == "c BAD No mailbox selected"
    assert "MESSAGES 5" in c.ok("d STATUS INBOX (MESSAGES)")[0]


def test_check(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a CHECK") == ["a OK Check completed"]


def test_uid_store_responses_carry_uid_in_every_form(env):
    c = env.client(ALICE, mailbox="INBOX")
    *announced, two, three = c.ok("a UID STORE 2:3 +FLAGS ($Work)")  # a new keyword: FLAGS first
    assert announced and all("$Work" in x for x in announced)
    assert [two, three] == ["* 2 FETCH (UID 2 FLAGS ($Work))", "* 3 FETCH (UID 3 FLAGS ($Work))"]
    c.ok("b ENABLE CONDSTORE")
    assert re.fullmatch(r"\* 2 FETCH \(UID 2 FLAGS \(\) MODSEQ \(\d+\)\)", c.ok("c UID STORE 2 -FLAGS ($Work)")[0])
    assert re.fullmatch(r"\* 3 FETCH \(UID 3 MODSEQ \(\d+\)\)", c.ok("d UID STORE 3 +FLAGS.SILENT (\\Seen)")[0])
    top = int(re.search(r"HIGHESTMODSEQ (\d+)", c.ok("e STATUS INBOX (HIGHESTMODSEQ)")[0]).group(1))
    lines = c.ok(f"f UID STORE 4 (UNCHANGEDSINCE {top}) +FLAGS (\\Answered)")
    assert re.fullmatch(r"\* 4 FETCH \(UID 4 FLAGS \(\\Answered\) MODSEQ \(\d+\)\)", lines[0])


def test_store_by_others_reaches_a_condstore_session_with_uid_and_modseq(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a ENABLE CONDSTORE")
    other = env.client(ALICE, mailbox="INBOX")
    other.ok("b STORE 5 +FLAGS (\\Flagged)")
    assert re.fullmatch(r"\* 5 FETCH \(UID 5 FLAGS \(\\Flagged\) MODSEQ \(\d+\)\)", c.ok("c NOOP")[0])
