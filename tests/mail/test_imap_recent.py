"""\\Recent (RFC 3501 §2.3.2): a new message is recent in exactly one session — the first to SELECT
the mailbox after it arrived, or the one that has it selected when it arrives — and shows as
``* n RECENT``, ``\\Recent`` in FETCH FLAGS, STATUS (RECENT) and SEARCH RECENT / NEW / OLD."""

from __future__ import annotations

import re

import pytest

from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def append_cmd(tag: str, mailbox: str, raw: bytes, extra: str = "") -> bytes:
    return f"{tag} APPEND {mailbox}{extra} {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n"


def deliver(env, raw: bytes) -> int:
    """A message arriving as SMTP delivery stores it: recent for the next session to see it."""
    return env.append(ALICE, raw, recent=True)


def recent_of(select_lines: list[str]) -> int:
    return next(int(m.group(1)) for line in select_lines if (m := re.fullmatch(r"\* (\d+) RECENT", line)))


def test_first_select_sees_new_messages_as_recent(env):
    deliver(env, message(1))
    deliver(env, message(2))
    c = env.client(ALICE)
    assert recent_of(c.ok("s SELECT INBOX")) == 2
    assert c.ok("f FETCH 1:2 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))", "* 2 FETCH (FLAGS (\\Recent))"]


def test_recent_is_seen_by_exactly_one_of_two_sessions(env):
    deliver(env, message(1))
    first, second = env.client(ALICE), env.client(ALICE)
    counts = [recent_of(first.ok("s SELECT INBOX")), recent_of(second.ok("s SELECT INBOX"))]
    assert counts == [1, 0]
    assert second.ok("f FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]
    assert recent_of(env.client(ALICE).ok("s SELECT INBOX")) == 0  # reselecting: no longer recent


def test_examine_shows_recent_but_claims_nothing(env):
    """As Dovecot (and imaptest's select test): EXAMINE reports what is recent, and the next
    read-write SELECT still gets it."""
    deliver(env, message(1))
    viewer = env.client(ALICE)
    assert recent_of(viewer.ok("e EXAMINE INBOX")) == 1
    assert viewer.ok("f FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
    assert recent_of(env.client(ALICE).ok("s SELECT INBOX")) == 1


def test_arrival_is_recent_for_one_of_the_sessions_that_have_it_selected(env):
    a, b = env.client(ALICE, mailbox="INBOX"), env.client(ALICE, mailbox="INBOX")
    deliver(env, message(1))  # SMTP delivery
    assert a.ok("n NOOP") == ["* 1 EXISTS", "* 1 RECENT"]
    assert b.ok("n NOOP") == ["* 1 EXISTS"]  # its RECENT count did not change
    assert a.ok("f FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS (\\Recent))"]
    assert b.ok("f FETCH 1 FLAGS") == ["* 1 FETCH (FLAGS ())"]


def test_idle_reports_recent_with_exists(env):
    idler = env.client(ALICE, mailbox="INBOX")
    idler.send(b"i IDLE\r\n")
    deliver(env, message(1))
    assert idler.output() == b"* 1 EXISTS\r\n* 1 RECENT\r\n"
    assert idler.send(b"DONE\r\n") == b"i OK Idle completed\r\n"


def test_status_recent_counts_unclaimed_messages(env):
    c = env.client(ALICE)
    assert c.send(append_cmd("a", "Drafts", message(1))).startswith(b"a OK")
    assert c.ok("s STATUS Drafts (MESSAGES RECENT)") == ['* STATUS "Drafts" (MESSAGES 1 RECENT 1)']
    env.client(ALICE).ok("x SELECT Drafts")
    assert c.ok("t STATUS Drafts (RECENT)") == ['* STATUS "Drafts" (RECENT 0)']


def test_status_of_the_selected_mailbox_counts_own_recent(env):
    deliver(env, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    deliver(env, message(2))
    assert c.ok("s STATUS INBOX (RECENT)")[-1] == '* STATUS "INBOX" (RECENT 2)'


def test_search_recent_new_old(env):
    deliver(env, message(1))
    c = env.client(ALICE)
    c.ok("s SELECT INBOX")
    deliver(env, message(2))
    deliver(env, message(3))
    c.ok("n NOOP")
    other = env.client(ALICE, mailbox="INBOX")
    deliver(env, message(4))
    other.ok("n NOOP")  # message 4 is recent for the other session
    c.ok("n2 NOOP")
    c.ok("f STORE 2 +FLAGS.SILENT (\\Seen)")
    assert c.ok("a SEARCH RECENT") == ["* SEARCH 1 2 3"]
    assert c.ok("b SEARCH NEW") == ["* SEARCH 1 3"]
    assert c.ok("c SEARCH OLD") == ["* SEARCH 4"]
    assert other.ok("d UID SEARCH RECENT")[-1] == "* SEARCH 4"


def test_recent_cannot_be_stored(env):
    deliver(env, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a STORE 1 -FLAGS (\\Recent)") == ["* 1 FETCH (FLAGS (\\Recent))"]


def test_list_status_recent(env):
    deliver(env, message(1))
    deliver(env, message(2))
    c = env.client(ALICE)
    assert c.send(append_cmd("a", "Drafts", message(3))).startswith(b"a OK")
    lines = c.ok('l LIST "" (INBOX Drafts Sent) RETURN (STATUS (RECENT))')
    assert [line for line in lines if line.startswith("* STATUS")] == [
        '* STATUS "INBOX" (RECENT 2)', '* STATUS "Drafts" (RECENT 1)', '* STATUS "Sent" (RECENT 0)']


def test_copies_are_recent_in_the_destination(env):
    deliver(env, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("c COPY 1 Archive")
    assert recent_of(env.client(ALICE).ok("s SELECT Archive")) == 1
