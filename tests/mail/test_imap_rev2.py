"""IMAP4rev2 (RFC 9051) alongside IMAP4rev1: advertised, switched on per session by ``ENABLE
IMAP4rev2``; then no RECENT, ESEARCH answers to SEARCH, \\NonExistent in every LIST, no LSUB,
[CLOSED] when SELECT replaces a mailbox, UTF-8 names. Sessions that do not enable it keep rev1."""

from __future__ import annotations

import pytest

from tests.support.harness import resolve
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def _rev2(env, mailbox: str | None = None):
    c = env.client(ALICE)
    assert c.ok("en ENABLE IMAP4rev2") == ["* ENABLED IMAP4rev2"]
    if mailbox:
        c.select(mailbox)
    return c


def test_rev2_is_advertised_with_rev1(env):
    c = env.client()
    assert "IMAP4rev1" in c.greeting and "IMAP4rev2" in c.greeting
    caps = env.client(ALICE).ok("a CAPABILITY")[0].split()
    assert {"IMAP4rev1", "IMAP4rev2"} <= set(caps)


def test_enable_rev2_once(env):
    c = _rev2(env)
    assert c.ok("a ENABLE IMAP4rev2") == ["* ENABLED"]


def test_select_has_no_recent_and_no_unseen_in_rev2(env):
    env.append(ALICE, message(1))
    lines = _rev2(env).ok("a SELECT INBOX")
    assert "* 1 EXISTS" in lines
    assert not any("RECENT" in x or "UNSEEN" in x for x in lines)


def test_select_returns_the_list_response_in_rev2(env):
    c = _rev2(env)
    c.ok("a CREATE Sent/Old")
    assert '* LIST (\\HasNoChildren) "/" "INBOX"' in c.ok("b SELECT INBOX")
    assert '* LIST (\\Sent \\HasChildren) "/" "Sent"' in c.ok("c EXAMINE Sent")
    assert not any(x.startswith("* LIST") for x in env.client(ALICE).ok("d SELECT INBOX"))


def test_select_keeps_recent_in_rev1(env):
    env.append(ALICE, message(1))
    assert "* 0 RECENT" in env.client(ALICE).ok("a SELECT INBOX")


def test_search_answers_esearch(env):
    for i in range(3):
        env.append(ALICE, message(i))
    c = _rev2(env, "INBOX")
    assert c.ok("s1 SEARCH ALL") == ['* ESEARCH (TAG "s1") ALL 1:3']
    assert c.ok("s2 UID SEARCH 1,3") == ['* ESEARCH (TAG "s2") UID ALL 1,3']
    assert c.ok("s3 SEARCH DELETED") == ['* ESEARCH (TAG "s3")']


def test_search_stays_search_in_rev1(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("s SEARCH ALL") == ["* SEARCH 1"]


def test_list_uses_nonexistent_in_rev2(env):
    c = _rev2(env)
    c.ok("a CREATE Top/Child")
    c.ok("b DELETE Top")
    assert c.ok('c LIST "" "Top"') == ['* LIST (\\NonExistent \\HasChildren) "/" "Top"']


def test_lsub_is_gone_in_rev2(env):
    c = _rev2(env)
    assert c.cmd('a LSUB "" "*"')[-1].startswith("a BAD")
    assert env.client(ALICE).cmd('b LSUB "" "INBOX"') == ['* LSUB () "/" "INBOX"', "b OK Lsub completed"]


def test_list_subscribed_replaces_lsub(env):
    c = _rev2(env)
    assert c.ok('a LIST (SUBSCRIBED) "" "INBOX"') == ['* LIST (\\Subscribed \\HasNoChildren) "/" "INBOX"']


def test_selecting_another_mailbox_says_closed(env):
    c = _rev2(env, "INBOX")
    lines = c.ok("a EXAMINE Sent")
    assert lines[0] == "* OK [CLOSED] Previous mailbox closed"
    # rev1 sessions get it too: tau advertises QRESYNC (RFC 7162 §3.2.11), as Dovecot does
    assert any("CLOSED" in x for x in env.client(ALICE, mailbox="INBOX").ok("b SELECT Sent"))


def test_closed_also_before_a_failed_select(env):
    c = _rev2(env, "INBOX")
    assert c.cmd("a SELECT Nope") == ["* OK [CLOSED] Previous mailbox closed",
                                      "a NO [NONEXISTENT] Mailbox doesn't exist"]


def test_names_are_utf8_in_rev2(env):
    resolve(env.store.create_mailbox(ALICE, "Entw\u00fcrfe"))
    c = _rev2(env)
    assert c.ok('a LIST "" "Entw*"') == ['* LIST (\\HasNoChildren) "/" "Entw\u00fcrfe"']


def test_append_utf8_in_rev2(env):
    raw = "Subject: \u00e4\r\n\r\nx\r\n".encode()
    c = _rev2(env)
    assert c.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")\r\n").startswith(b"a OK [APPENDUID ")


def test_status_size_and_list_status_in_rev2(env):
    env.append(ALICE, message(1))
    c = _rev2(env)
    assert c.ok("a STATUS INBOX (MESSAGES SIZE)") == [f'* STATUS "INBOX" (MESSAGES 1 SIZE {len(message(1))})']
    assert c.ok('b LIST "" "INBOX" RETURN (STATUS (MESSAGES))') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"', '* STATUS "INBOX" (MESSAGES 1)']


def test_namespace_unselect_and_binary_in_rev2(env):
    env.append(ALICE, message(1))
    c = _rev2(env, "INBOX")
    assert c.ok("a NAMESPACE") == ['* NAMESPACE (("" "/")) NIL NIL']
    assert c.send(b"b FETCH 1 BINARY.PEEK[1]\r\n").startswith(b"* 1 FETCH (BINARY[1] ")
    assert c.ok("c UNSELECT") == []
    assert c.cmd("d FETCH 1 FLAGS")[-1] == "d BAD No mailbox selected"


def test_unsolicited_flag_changes_carry_uid_in_rev2(env):
    env.append(ALICE, message(1))
    c = _rev2(env, "INBOX")
    other = env.client(ALICE, mailbox="INBOX")
    other.ok("a STORE 1 +FLAGS (\\Flagged)")
    assert "* 1 FETCH (UID 1 FLAGS (\\Flagged))" in c.ok("b NOOP")


def test_status_deleted(env):
    env.append(ALICE, message(1), flags=("\\Deleted",))
    env.append(ALICE, message(2))
    env.append(ALICE, message(3), mailbox="Sent", flags=("\\Deleted", "\\Seen"))
    c = _rev2(env)
    assert c.ok("a STATUS INBOX (MESSAGES DELETED)") == ['* STATUS "INBOX" (MESSAGES 2 DELETED 1)']
    assert c.ok('b LIST "" ("INBOX" "Sent" "Junk") RETURN (STATUS (DELETED))') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"', '* STATUS "INBOX" (DELETED 1)',
        '* LIST (\\Junk \\HasNoChildren) "/" "Junk"', '* STATUS "Junk" (DELETED 0)',
        '* LIST (\\Sent \\HasNoChildren) "/" "Sent"', '* STATUS "Sent" (DELETED 1)']


def test_search_return_options_in_rev2(env):
    for i in range(5):
        env.append(ALICE, message(i), flags=("\\Seen",) if i % 2 else ())
    c = _rev2(env, "INBOX")
    assert c.ok("a SEARCH RETURN (COUNT) UNSEEN") == ['* ESEARCH (TAG "a") COUNT 3']
    assert c.ok("b SEARCH RETURN (MIN MAX) UNSEEN") == ['* ESEARCH (TAG "b") MIN 1 MAX 5']
    assert c.ok("c UID SEARCH RETURN () 2:4") == ['* ESEARCH (TAG "c") UID ALL 2:4']
    assert c.ok("d SEARCH RETURN (ALL COUNT) DELETED") == ['* ESEARCH (TAG "d") COUNT 0']


def test_status_recent_is_bad_in_rev2(env):
    c = _rev2(env)
    assert c.cmd("a STATUS INBOX (RECENT)")[-1].startswith("a BAD")
    assert c.cmd('b LIST "" "INBOX" RETURN (STATUS (RECENT))')[-1].startswith("b BAD")
    assert env.client(ALICE).ok("c STATUS INBOX (RECENT)") == ['* STATUS "INBOX" (RECENT 0)']


def test_searchres_saves_and_reuses_the_result(env):
    for i in range(5):
        env.append(ALICE, message(i), flags=("\\Seen",) if i % 2 else ())
    c = _rev2(env, "INBOX")
    assert c.ok("a SEARCH RETURN (SAVE) UNSEEN") == []
    assert [x.split(" (")[0] for x in c.ok("b FETCH $ (FLAGS)")] == ["* 1 FETCH", "* 3 FETCH", "* 5 FETCH"]
    c.ok("c STORE $ +FLAGS.SILENT (\\Flagged)")
    assert c.ok("d SEARCH FLAGGED") == ['* ESEARCH (TAG "d") ALL 1,3,5']
    assert c.ok("e SEARCH $ SEEN") == ['* ESEARCH (TAG "e")']
    assert c.ok("f UID SEARCH UID $") == ['* ESEARCH (TAG "f") UID ALL 1,3,5']
    c.ok("g COPY $ Sent")
    assert c.ok('h STATUS Sent (MESSAGES)') == ['* STATUS "Sent" (MESSAGES 3)']


def test_searchres_with_min_max_saves_only_those(env):
    for i in range(4):
        env.append(ALICE, message(i))
    c = _rev2(env, "INBOX")
    assert c.ok("a SEARCH RETURN (SAVE MIN MAX) ALL") == ['* ESEARCH (TAG "a") MIN 1 MAX 4']
    assert c.ok("b UID SEARCH $") == ['* ESEARCH (TAG "b") UID ALL 1,4']


def test_searchres_follows_expunge_and_is_emptied_by_select(env):
    for i in range(3):
        env.append(ALICE, message(i))
    c = _rev2(env, "INBOX")
    c.ok("a UID SEARCH RETURN (SAVE) 2:3")
    c.ok("b UID STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("c EXPUNGE")
    assert c.ok("d UID FETCH $ (UID)") == ["* 2 FETCH (UID 3)"]
    c.ok("e SELECT INBOX")
    assert c.ok("f FETCH $ (UID)") == []


def test_failed_save_leaves_the_result_empty(env):
    env.append(ALICE, message(1))
    c = _rev2(env, "INBOX")
    c.ok("a SEARCH RETURN (SAVE) ALL")
    assert c.cmd("b SEARCH RETURN (SAVE) BOGUS")[-1].startswith("b BAD")
    assert c.ok("c FETCH $ (UID)") == []


def test_dollar_works_in_rev1_too(env):
    """SEARCHRES is advertised to every session (esearch.py), not only to IMAP4rev2 ones."""
    env.append(ALICE, message(1))
    c = env.client(ALICE, mailbox="INBOX")
    assert c.ok("a FETCH $ (UID)") == []  # nothing saved yet: an empty set
    c.ok("b SEARCH RETURN (SAVE) ALL")
    assert c.ok("c FETCH $ (UID)") == ["* 1 FETCH (UID 1)"]
