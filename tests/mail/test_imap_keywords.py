"""Keywords in FLAGS and PERMANENTFLAGS (RFC 3501 §6.3.1, §7.1, §7.2.6): SELECT/EXAMINE list the
mailbox's keywords, and every session hears ``* FLAGS`` before a FETCH response that shows a keyword
it has not been told about (Dovecot imaptest: "Keyword used without being in FLAGS")."""

from __future__ import annotations

import pytest

from tau.mail.store.keywords import MAX_KEYWORDS
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
SYSTEM = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.append(ALICE, message(1))
    e.append(ALICE, message(2))
    return e


def append_cmd(tag: str, mailbox: str, raw: bytes, extra: str = "") -> bytes:
    return f"{tag} APPEND {mailbox}{extra} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n"


def flags_lines(*keywords: str) -> list[str]:
    words = "".join(" " + k for k in keywords)
    return [f"* FLAGS ({SYSTEM}{words})", f"* OK [PERMANENTFLAGS ({SYSTEM}{words} \\*)] Flags permitted"]


def test_select_lists_keywords_in_flags_and_permanentflags(env):
    env.client(ALICE, mailbox="INBOX").ok("a STORE 1 +FLAGS.SILENT ($Work Junk)")
    lines = env.client(ALICE).ok("s SELECT INBOX")
    assert lines[:2] == flags_lines("$Work", "Junk")


def test_examine_lists_keywords_and_no_permanent_flags(env):
    env.client(ALICE, mailbox="INBOX").ok("a STORE 1 +FLAGS.SILENT ($Work)")
    lines = env.client(ALICE).ok("s EXAMINE INBOX")
    assert lines[:2] == [f"* FLAGS ({SYSTEM} $Work)", "* OK [PERMANENTFLAGS ()] Flags permitted"]


def test_keywords_are_per_mailbox(env):
    env.client(ALICE, mailbox="INBOX").ok("a STORE 1 +FLAGS.SILENT ($Work)")
    assert env.client(ALICE).ok("s SELECT Trash")[:2] == flags_lines()


def test_store_of_new_keyword_announces_flags_before_its_fetch(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a STORE 1 +FLAGS ($Work)") == [*flags_lines("$Work"), "* 1 FETCH (FLAGS ($Work))"]
    assert c.ok("b STORE 2 +FLAGS ($Work)") == ["* 2 FETCH (FLAGS ($Work))"]  # known by now


def test_silent_store_of_new_keyword_still_announces_flags(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a STORE 1 +FLAGS.SILENT ($Work)") == flags_lines("$Work")
    assert c.ok("b FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ($Work))"]


def test_other_session_hears_flags_before_fetch_on_noop(env):
    other = env.client(ALICE, mailbox="INBOX")
    c = env.client(ALICE, mailbox="INBOX")
    other.ok("a STORE 2 +FLAGS.SILENT ($Todo)")
    assert c.ok("n NOOP") == [*flags_lines("$Todo"), "* 2 FETCH (UID 2 FLAGS ($Todo))"]


def test_idling_session_hears_flags_before_fetch(env):
    idler = env.client(ALICE, mailbox="INBOX")
    assert idler.send(b"i IDLE\r\n") == b"+ idling\r\n"
    env.client(ALICE, mailbox="INBOX").ok("a STORE 1 +FLAGS.SILENT ($Todo)")
    out = idler.output().decode().split("\r\n")[:-1]
    assert out == [*flags_lines("$Todo"), "* 1 FETCH (UID 1 FLAGS ($Todo))"]
    assert idler.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_append_with_keyword_defines_it(env):
    c = env.client(ALICE)
    assert c.send(append_cmd("a", "INBOX", message(3), " (\\Seen Project-X)")).startswith(b"a OK")
    assert c.ok("s SELECT INBOX")[:2] == flags_lines("Project-X")


def test_append_by_another_session_announces_flags_to_idler(env):
    idler = env.client(ALICE, mailbox="INBOX")
    idler.send(b"i IDLE\r\n")
    env.client(ALICE).send(append_cmd("a", "INBOX", message(3), " ($Label1)"))
    out = idler.output().decode().split("\r\n")[:-1]
    assert out == [*flags_lines("$Label1"), "* 3 EXISTS", "* 1 RECENT"]
    idler.send(b"DONE\r\n")
    assert idler.ok("f FETCH 3 FLAGS") == ["* 3 FETCH (FLAGS ($Label1 \\Recent))"]


def test_copy_defines_keywords_in_the_destination(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT ($Work)")
    c.ok("b COPY 1 Archive")
    assert env.client(ALICE).ok("s SELECT Archive")[:2] == flags_lines("$Work")


def test_keywords_keep_the_mailbox_spelling(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT ($Work)")
    assert c.ok("b STORE 2 +FLAGS ($WORK)")[-1] == "* 2 FETCH (FLAGS ($Work))"


def test_invalid_keyword_is_bad(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a STORE 1 +FLAGS (\"with space\")")[-1].startswith("a BAD")
    assert c.cmd("b STORE 1 +FLAGS (a%b)")[-1].startswith("b BAD")
    assert c.cmd(f"c STORE 1 +FLAGS ({'k' * 101})")[-1].startswith("c BAD")


def test_keyword_limit_is_no_limit(env):
    c = env.client(ALICE, mailbox="INBOX")
    batch = 50
    for start in range(0, MAX_KEYWORDS, batch):
        words = " ".join(f"k{i}" for i in range(start, min(start + batch, MAX_KEYWORDS)))
        c.ok(f"a{start} STORE 1 +FLAGS.SILENT ({words})")
    assert c.cmd("b STORE 2 +FLAGS (one-too-many)")[-1].startswith("b NO [LIMIT]")
    assert c.send(append_cmd("c", "INBOX", message(3), " (another)")).startswith(b"c NO [LIMIT]")
    assert c.ok("d STORE 2 +FLAGS (k7)") == ["* 2 FETCH (FLAGS (k7))"]  # existing ones still work
    lines = env.client(ALICE).ok("s SELECT INBOX")
    assert lines[1].startswith("* OK [PERMANENTFLAGS (") and "\\*" not in lines[1]


def test_move_defines_keywords_in_the_destination(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 2 +FLAGS.SILENT (Later)")
    c.ok("b MOVE 2 Junk")
    assert env.client(ALICE).ok("s SELECT Junk")[:2] == flags_lines("Later")
