"""SORT (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO) and THREAD=ORDEREDSUBJECT/REFERENCES
(RFC 5256 §2.2) through the IMAP protocol, on both engines."""

from __future__ import annotations

import pytest

from tests.support.harness import resolve
from tests.support.imap import IMAPEnv

ALICE = "alice@example.test"
T0 = 1_700_000_000


def mail(sender: str, subject: str, date: str, msgid: str, extra: str = "", body: str = "hi\r\n",
         to: str = "alice@example.test") -> bytes:
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            f"Message-ID: {msgid}\r\n{extra}\r\n{body}").encode()


@pytest.fixture
def sorted_env(registry):
    """Five messages whose keys disagree: subject, date, sender, size and arrival each give
    another order."""
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    msgs = [
        mail("Zed <zed@a.test>", "Re: Fwd: [list] apple", "Tue, 3 Jan 2023 10:00:00 +0000", "<s1@x>",
             body="x" * 300, to="Carol <carol@c.test>"),
        mail("Amy <amy@z.test>", "banana", "Sun, 1 Jan 2023 10:00:00 +0000", "<s2@x>", body="x" * 900,
             to="dave@d.test"),
        mail("mike@m.test", "[list] Apple", "Mon, 2 Jan 2023 10:00:00 +0000", "<s3@x>", body="x" * 100,
             to="Bert <zz@b.test>"),
        mail("Bob <bob@b.test>", "Fwd: cherry (fwd)", "Sun, 1 Jan 2023 10:00:00 +0000", "<s4@x>",
             body="x" * 600, to="Abe <yy@a.test>"),
        mail("Yan <yan@y.test>", "apple", "Wed, 4 Jan 2023 08:00:00 +0100", "<s5@x>", body="x" * 50,
             to="eve@e.test"),
    ]
    arrivals = [T0 + 50, T0 + 40, T0 + 30, T0 + 20, T0 + 10]
    for raw, when in zip(msgs, arrivals, strict=True):
        e.append(ALICE, raw, internal_date=when)
    return e


def sort(c, args: str, uid: bool = False) -> list[int]:
    lines = c.ok(("a UID SORT " if uid else "a SORT ") + args)
    assert len(lines) == 1 and lines[0].startswith("* SORT"), lines
    return [int(x) for x in lines[0].split()[2:]]


SORTS = [
    ("(SUBJECT) UTF-8 ALL", [1, 3, 5, 2, 4]),           # "Re: Fwd: [list] apple" = "[list] Apple" = "apple"
    ("(REVERSE SUBJECT) UTF-8 ALL", [4, 2, 1, 3, 5]),    # equal keys keep mailbox order
    ("(DATE) UTF-8 ALL", [2, 4, 3, 1, 5]),
    ("(REVERSE DATE) UTF-8 ALL", [5, 1, 3, 2, 4]),
    ("(ARRIVAL) UTF-8 ALL", [5, 4, 3, 2, 1]),
    ("(SIZE) UTF-8 ALL", [5, 3, 1, 4, 2]),
    ("(REVERSE SIZE) US-ASCII ALL", [2, 4, 1, 3, 5]),
    ("(FROM) UTF-8 ALL", [2, 4, 3, 5, 1]),               # local parts: amy bob mike yan zed
    ("(TO) UTF-8 ALL", [1, 2, 5, 4, 3]),                 # carol dave eve yy zz
    ("(CC) UTF-8 ALL", [1, 2, 3, 4, 5]),                 # none has Cc: all equal
    ("(DISPLAYFROM) UTF-8 ALL", [2, 4, 3, 5, 1]),        # amy bob mike@m.test yan zed
    ("(DISPLAYTO) UTF-8 ALL", [4, 3, 1, 2, 5]),          # abe bert carol dave@d.test eve@e.test
    ("(SUBJECT REVERSE DATE) UTF-8 ALL", [5, 1, 3, 2, 4]),
    ("(DATE) UTF-8 SUBJECT apple", [3, 1, 5]),
    ("(SIZE) UTF-8 OR FROM amy FROM bob", [4, 2]),
]


def test_sort_orders(sorted_env):
    c = sorted_env.client(ALICE, mailbox="INBOX")
    wrong = {args: (sort(c, args), want) for args, want in SORTS if sort(c, args) != want}
    assert not wrong


def test_uid_sort_answers_uids_after_expunge(sorted_env):
    c = sorted_env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 2 +FLAGS.SILENT (\\Deleted)")
    c.ok("b EXPUNGE")
    assert sort(c, "(DATE) UTF-8 ALL", uid=True) == [4, 3, 1, 5]
    assert sort(c, "(DATE) UTF-8 ALL") == [3, 2, 1, 4]


@pytest.mark.parametrize("args", ["(FOO) UTF-8 ALL", "DATE UTF-8 ALL", "(DATE) UTF-8", "(REVERSE) UTF-8 ALL",
                                  "(DATE) UTF-8 BOGUS", "() UTF-8 ALL"])
def test_sort_bad_arguments(sorted_env, args):
    c = sorted_env.client(ALICE, mailbox="INBOX")
    assert c.cmd("x SORT " + args)[-1].startswith("x BAD")


def test_sort_unknown_charset(sorted_env):
    c = sorted_env.client(ALICE, mailbox="INBOX")
    assert c.cmd("x SORT (DATE) KOI8-R ALL")[-1] == "x NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"


def test_sort_of_messages_stored_before_the_keys_table(sorted_env):
    """Rows delivered before the migrations have no keys yet (and were in plaintext): the first
    SORT seals them and computes their keys."""
    from tests.support.atrest import unseal_mail

    reg = sorted_env.registry
    resolve(reg.db.run("unseal", unseal_mail, reg.keyring))
    resolve(reg.db.run("drop_keys", lambda txn: txn.execute("DELETE FROM message_sort_keys")))
    c = sorted_env.client(ALICE, mailbox="INBOX")
    assert sort(c, "(SUBJECT) UTF-8 ALL") == [1, 3, 5, 2, 4]


@pytest.fixture
def thread_env(registry):
    """A reply chain 1 ← 2 ← 3, two replies (4, 5) to a message the mailbox does not hold, a reply
    (6) without references that only its subject ties to 1, and a lone message (7)."""
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    specs = [
        ("topic", "<a@x>", ""),
        ("Re: topic", "<b@x>", "In-Reply-To: <a@x>\r\n"),
        ("Re: topic", "<c@x>", "References: <a@x> <b@x>\r\n"),
        ("other", "<d@x>", "References: <gone@x>\r\n"),
        ("Re: other", "<e@x>", "References: <gone@x>\r\n"),
        ("Re: topic", "<f@x>", ""),
        ("lonely", "<g@x>", ""),
    ]
    for day, (subject, msgid, extra) in enumerate(specs, start=1):
        e.append(ALICE, mail("Bob <bob@b.test>", subject, f"{day} Mar 2023 12:00:00 +0000", msgid, extra),
                 internal_date=T0 + day)
    return e


def thread(c, args: str) -> str:
    lines = c.ok("t " + args)
    assert len(lines) == 1 and lines[0].startswith("* THREAD"), lines
    return lines[0][len("* THREAD"):].strip()


def test_thread_references(thread_env):
    c = thread_env.client(ALICE, mailbox="INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(1 (2 3)(6))((4)(5))(7)"


def test_thread_ordered_subject(thread_env):
    c = thread_env.client(ALICE, mailbox="INBOX")
    assert thread(c, "THREAD ORDEREDSUBJECT UTF-8 ALL") == "(1 (2)(3)(6))(4 5)(7)"


def test_thread_references_on_a_search_result(thread_env):
    """Only matching messages are threaded: without 2, 3 still hangs under 1 through References."""
    c = thread_env.client(ALICE, mailbox="INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 NOT 2") == "(1 (3)(6))((4)(5))(7)"
    assert thread(c, "THREAD REFERENCES UTF-8 SUBJECT nothing-like-this") == ""


def test_uid_thread_answers_uids(thread_env):
    c = thread_env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("b EXPUNGE")
    # 1 gone: its dummy had one child (2) and is pruned; 2 and 6 are both replies on "topic",
    # so subject grouping makes them siblings under a new dummy (RFC 5256 §2.2 step 5.C.v)
    assert thread(c, "UID THREAD REFERENCES UTF-8 ALL") == "((2 3)(6))((4)(5))(7)"
    assert thread(c, "THREAD ORDEREDSUBJECT UTF-8 ALL") == "(1 (2)(5))(3 4)(6)"


@pytest.mark.parametrize("args", ["THREAD FOO UTF-8 ALL", "THREAD REFERENCES", "THREAD REFERENCES UTF-8 BOGUS"])
def test_thread_bad_arguments(thread_env, args):
    c = thread_env.client(ALICE, mailbox="INBOX")
    assert c.cmd("x " + args)[-1].startswith("x BAD")


def test_capabilities_advertised(thread_env):
    c = thread_env.client(ALICE)
    caps = c.ok("c CAPABILITY")[0].split()
    assert {"ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY", "ESORT", "THREAD=ORDEREDSUBJECT",
            "THREAD=REFERENCES"} <= set(caps)


def test_thread_sees_new_mail_after_an_earlier_thread(thread_env):
    """Results are reused only for the same mailbox state: a new reply shows up at once."""
    c = thread_env.client(ALICE, mailbox="INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(1 (2 3)(6))((4)(5))(7)"
    thread_env.append(ALICE, mail("Bob <bob@b.test>", "Re: lonely", "9 Mar 2023 12:00:00 +0000", "<h@x>",
                                  "References: <g@x>\r\n"), internal_date=T0 + 9)
    c.ok("n NOOP")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(1 (2 3)(6))((4)(5))(7 8)"


def test_sort_by_flag_sees_a_flag_change(sorted_env):
    c = sorted_env.client(ALICE, mailbox="INBOX")
    assert sort(c, "(DATE) UTF-8 FLAGGED") == []
    c.ok("a STORE 3 +FLAGS.SILENT (\\Flagged)")
    assert sort(c, "(DATE) UTF-8 FLAGGED") == [3]


def test_thread_survives_reference_loops(registry):
    """Two messages naming each other (and one naming itself) as parents: links that would close
    a loop are skipped (RFC 5256 §2.2 step 1), so every message appears exactly once."""
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.append(ALICE, mail("a@x.test", "loop", "1 Mar 2023 12:00:00 +0000", "<p@x>", "References: <q@x>\r\n"))
    e.append(ALICE, mail("a@x.test", "loop", "2 Mar 2023 12:00:00 +0000", "<q@x>", "References: <p@x>\r\n"))
    e.append(ALICE, mail("a@x.test", "self", "3 Mar 2023 12:00:00 +0000", "<r@x>", "References: <r@x>\r\n"))
    c = e.client(ALICE, mailbox="INBOX")
    assert thread(c, "THREAD REFERENCES UTF-8 ALL") == "(2 1)(3)"


def test_keys_compare_like_dovecot_punctuation_after_letters_and_groups_by_name(registry):
    """i;ascii-casemap upper-cases before comparing, so "_" and "[" sort after the letters; a
    field that starts with a group sorts by the group's name (its first ENVELOPE address)."""
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    date = "Mon, 2 Jan 2023 10:00:00 +0000"
    for i, (subject, to) in enumerate([("_", "z: aa@aa.org, bb@bb.org;"), ("b", "foo bar <a@b.c>"),
                                       ("[xyz]", "empty:;"), ("a", "b@c.d")]):
        e.append(ALICE, mail("x@x.test", subject, date, f"<g{i}@x>", to=to))
    c = e.client(ALICE, mailbox="INBOX")
    assert sort(c, "(SUBJECT) US-ASCII ALL") == [4, 2, 3, 1]
    assert sort(c, "(DISPLAYTO) US-ASCII ALL") == [4, 3, 2, 1]
    assert sort(c, "(TO) US-ASCII ALL") == [2, 4, 3, 1]
