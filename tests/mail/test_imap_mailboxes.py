"""SELECT/EXAMINE, CREATE/DELETE/RENAME, SUBSCRIBE, LIST/LSUB (LIST-EXTENDED, SPECIAL-USE,
LIST-STATUS), STATUS (RFC 3501 §6.3, RFC 5258, RFC 6154, RFC 5819, RFC 7162), and the rule that a
user can never reach another user's mailboxes by name."""

from __future__ import annotations

import pytest

from tests.support.harness import resolve
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
BOB = "bob@example.test"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.add_user(BOB)
    return e


def test_select_responses(env):
    env.append(ALICE, message(1), flags=("\\Seen",))
    env.append(ALICE, message(2))
    c = env.client(ALICE)
    lines = c.cmd("a SELECT inbox")
    assert lines[0] == "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"
    assert lines[1] == "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted"
    assert lines[2:5] == ["* 2 EXISTS", "* 0 RECENT", "* OK [UNSEEN 2] First unseen"]
    assert lines[5].startswith("* OK [UIDVALIDITY ") and lines[6] == "* OK [UIDNEXT 3] Predicted next UID"
    assert lines[7].startswith("* OK [HIGHESTMODSEQ ")
    assert lines[8] == "a OK [READ-WRITE] Select completed"
    assert c.proto.selected.uids.tolist() == [1, 2]


def test_select_first_unseen(env):
    for i in range(3):
        env.append(ALICE, message(i))
    c = env.client(ALICE)
    assert "* OK [UNSEEN 1] First unseen" in c.ok("a SELECT INBOX")
    c.ok("b STORE 1:2 +FLAGS.SILENT (\\Seen)")
    assert "* OK [UNSEEN 3] First unseen" in c.ok("c SELECT INBOX")
    c.ok("d STORE 3 +FLAGS.SILENT (\\Seen)")
    assert not any("UNSEEN" in x for x in c.ok("e SELECT INBOX"))


def test_examine_is_read_only(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE)
    lines = c.cmd("a EXAMINE INBOX")
    assert "* OK [PERMANENTFLAGS ()] Flags permitted" in lines
    assert lines[-1] == "a OK [READ-ONLY] Examine completed"
    assert c.cmd("b STORE 1 +FLAGS (\\Seen)")[-1] == "b NO [READ-ONLY] Mailbox is read-only"
    assert c.cmd("c EXPUNGE")[-1].startswith("c NO [READ-ONLY]")
    c.ok("d FETCH 1 BODY[]")
    assert "FLAGS ()" in c.ok("e FETCH 1 FLAGS")[0]  # no implicit \Seen in EXAMINE


def test_select_condstore_parameter(env):
    c = env.client(ALICE)
    c.ok("a SELECT INBOX (CONDSTORE)")
    assert c.proto.condstore
    assert c.cmd("b SELECT INBOX (FOO)")[-1].startswith("b BAD")


def test_failed_select_deselects(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a SELECT Nope")[-1] == "a NO [NONEXISTENT] Mailbox doesn't exist"
    assert c.proto.selected is None
    assert c.cmd("b FETCH 1 FLAGS")[-1] == "b BAD No mailbox selected"


def test_create_hierarchy_and_list(env):
    c = env.client(ALICE)
    c.ok("a CREATE Projects/2024/")
    c.ok("b CREATE Projects/2025")
    assert c.cmd("c CREATE Projects")[-1].startswith("c NO [ALREADYEXISTS]")
    assert c.cmd("d CREATE inbox")[-1].startswith("d NO [ALREADYEXISTS]")
    lines = c.ok('e LIST "" "Projects*"')
    assert lines == ['* LIST (\\HasChildren) "/" "Projects"', '* LIST (\\HasNoChildren) "/" "Projects/2024"',
                     '* LIST (\\HasNoChildren) "/" "Projects/2025"']
    assert c.ok('f LIST "" %') == [
        '* LIST (\\HasNoChildren) "/" "INBOX"', '* LIST (\\Archive \\HasNoChildren) "/" "Archive"',
        '* LIST (\\Drafts \\HasNoChildren) "/" "Drafts"', '* LIST (\\Junk \\HasNoChildren) "/" "Junk"',
        '* LIST (\\HasChildren) "/" "Projects"', '* LIST (\\Sent \\HasNoChildren) "/" "Sent"',
        '* LIST (\\Trash \\HasNoChildren) "/" "Trash"']
    assert c.ok('g LIST "Projects/" %') == ['* LIST (\\HasNoChildren) "/" "Projects/2024"',
                                           '* LIST (\\HasNoChildren) "/" "Projects/2025"']
    assert c.ok('h LIST "" ""') == ['* LIST (\\Noselect) "/" ""']


def test_create_invalid_names(env):
    c = env.client(ALICE)
    for name in ["a//b", "/lead", "a/../b", "a/./b", "star*", "pct%", "ctl\x01", " pad", "x" * 300]:
        line = c.cmd(f'a CREATE "{name}"')[-1]
        assert line.startswith("a NO") or line.startswith("a BAD"), (name, line)
    assert len(c.ok('b LIST "" *')) == 6


def test_unicode_names_are_modified_utf7_on_the_wire(env):
    c = env.client(ALICE)
    c.ok("a CREATE Entw&APw-rfe")
    c.ok('b CREATE "Caf\xc3\xa9"'.encode("latin-1"))  # a UTF-8 client
    lines = c.ok('c LIST "" *')
    assert '* LIST (\\HasNoChildren) "/" "Entw&APw-rfe"' in lines
    assert '* LIST (\\HasNoChildren) "/" "Caf&AOk-"' in lines
    assert {"Entwürfe", "Café"} <= {m.name for m in resolve(env.store.list_mailboxes(ALICE))}
    c.ok("d SELECT Entw&APw-rfe")


def test_list_extended_special_use_and_subscribed(env):
    c = env.client(ALICE)
    c.ok("a CREATE Work")
    c.ok("b SUBSCRIBE Work")
    special = c.ok('c LIST (SPECIAL-USE) "" *')
    assert [x.split('"/" ')[1] for x in special] == ['"Archive"', '"Drafts"', '"Junk"', '"Sent"', '"Trash"']
    assert all(x.startswith("* LIST (\\") for x in special)
    returned = c.ok('d LIST "" * RETURN (SPECIAL-USE SUBSCRIBED)')
    assert '* LIST (\\Subscribed \\HasNoChildren) "/" "Work"' in returned
    subscribed = c.ok('e LIST (SUBSCRIBED) "" *')
    assert '* LIST (\\Subscribed \\HasNoChildren) "/" "Work"' in subscribed
    assert c.ok('f LSUB "" W*') == ['* LSUB () "/" "Work"']
    c.ok("g UNSUBSCRIBE Work")
    assert c.ok('h LSUB "" W*') == []
    c.ok("i UNSUBSCRIBE NeverExisted")
    assert c.cmd('j LIST (BOGUS) "" *')[-1].startswith("j BAD")


def test_list_multiple_patterns_and_status(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE)
    lines = c.ok('a LIST "" (INBOX Sent) RETURN (STATUS (MESSAGES UNSEEN))')
    assert lines == ['* LIST (\\HasNoChildren) "/" "INBOX"', '* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)',
                     '* LIST (\\Sent \\HasNoChildren) "/" "Sent"', '* STATUS "Sent" (MESSAGES 0 UNSEEN 0)']


def test_list_missing_parent_is_noselect(env):
    c = env.client(ALICE)
    c.ok("a CREATE Top/Child")
    c.ok("b DELETE Top")
    lines = c.ok('c LIST "" %')
    assert '* LIST (\\Noselect \\HasChildren) "/" "Top"' in lines
    assert '* LIST (\\NonExistent \\HasChildren) "/" "Top"' in c.ok('d LIST () "" %')


def test_status(env):
    env.append(ALICE, message(1))
    env.append(ALICE, message(2), flags=("\\Seen",))
    c = env.client(ALICE)
    line = c.ok("a STATUS INBOX (MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN HIGHESTMODSEQ SIZE)")[0]
    assert line.startswith('* STATUS "INBOX" (MESSAGES 2 RECENT 0 UIDNEXT 3 UIDVALIDITY ')
    assert "UNSEEN 1 HIGHESTMODSEQ " in line and f"SIZE {len(message(1)) + len(message(2))})" in line
    assert c.cmd("b STATUS INBOX (BOGUS)")[-1].startswith("b BAD")
    assert c.cmd("c STATUS Nope (MESSAGES)")[-1].startswith("c NO [NONEXISTENT]")


def test_rename(env):
    c = env.client(ALICE)
    c.ok("a CREATE Old/Sub")
    c.ok("b SELECT Old")
    c.ok("c RENAME Old New")
    assert c.proto.selected.name == "New"
    names = [x.rsplit(" ", 1)[1] for x in c.ok('d LIST "" N*')]
    assert names == ['"New"', '"New/Sub"']
    assert c.cmd("e RENAME New Sent")[-1].startswith("e NO [ALREADYEXISTS]")
    assert c.cmd("f RENAME Missing X")[-1].startswith("f NO [NONEXISTENT]")


def test_rename_inbox_moves_messages(env):
    env.append(ALICE, message(1))
    c = env.client(ALICE)
    c.ok("a RENAME INBOX Saved")
    assert "MESSAGES 1" in c.ok("b STATUS Saved (MESSAGES)")[0]
    assert "MESSAGES 0" in c.ok("c STATUS INBOX (MESSAGES)")[0]


def test_delete(env):
    c = env.client(ALICE)
    c.ok("a CREATE Gone")
    c.ok("b SELECT Gone")
    c.ok("c DELETE Gone")
    assert c.proto.selected is None
    assert c.cmd("d DELETE INBOX")[-1].startswith("d NO [CANNOT]")
    assert c.cmd("e DELETE Gone")[-1].startswith("e NO [NONEXISTENT]")


TRICKS = [
    "Private", "bob@example.test/Private", "~bob@example.test/Private", "../bob@example.test/Private",
    "#Users/bob@example.test/Private", "/Private", "Other Users/bob/Private", "INBOX/../Private",
    "~bob/INBOX", "bob@example.test", "bob@example.test/INBOX", "../../bob@example.test/INBOX",
    "Pr&AGk-vate", "PRIVATE", "Private/",
]


def test_bad_other_users_mailbox_by_name_tricks(env):
    """Bob's folder "Private" holds a message; Alice may not reach it under any spelling."""
    env.client(BOB).ok("p CREATE Private")
    env.append(BOB, message(1, subject="bob's secret"), mailbox="Private")
    env.append(ALICE, message(2))
    c = env.client(ALICE)
    for name in TRICKS:
        q = '"' + name + '"'
        assert c.cmd(f"a SELECT {q}")[-1].startswith("a NO"), name
        assert c.cmd(f"b EXAMINE {q}")[-1].startswith("b NO"), name
        assert c.cmd(f"c STATUS {q} (MESSAGES)")[-1].startswith("c NO"), name
        assert c.cmd(f"d DELETE {q}")[-1].startswith("d NO"), name
        assert c.cmd(f"e RENAME {q} Mine")[-1].startswith("e NO"), name
        assert c.cmd(f"f APPEND {q} {{3+}}\r\nx\r\n")[-1].startswith("f NO"), name
        assert c.cmd(f"g SUBSCRIBE {q}")[-1].startswith("g NO"), name
        c.ok("h SELECT INBOX")
        assert c.cmd(f"i COPY 1 {q}")[-1].startswith("i NO [TRYCREATE]"), name
        assert c.cmd(f"j MOVE 1 {q}")[-1].startswith("j NO [TRYCREATE]"), name
        c.ok("k UNSELECT")
    assert not any("Private" in x for x in c.ok('l LIST "" *'))
    c.ok("m SELECT INBOX")
    assert not any("bob's secret" in x for x in c.ok("n FETCH 1:* (ENVELOPE BODY.PEEK[])"))
    # Bob's mailbox is untouched
    assert "MESSAGES 1" in env.client(BOB).ok("o STATUS Private (MESSAGES)")[0]


def test_names_that_are_not_modified_utf7_do_not_exist(env):
    """A name with a stray ``&`` is no syntax error (imaptest's atoms test, Dovecot): it names no
    mailbox, so SELECT says NO, CREATE refuses it and a LIST pattern matches nothing."""
    c = env.client(ALICE)
    name = "!#$&'+,-.0123456789:;<=>?@^_`|[}"
    assert c.cmd(f"a SELECT {name}")[-1].startswith("a NO [NONEXISTENT]")
    assert c.ok(f'b LIST "" {name}%*') == []
    assert c.cmd(f"c CREATE {name}")[-1].startswith("c NO")
