"""SEARCH / UID SEARCH (RFC 3501 §6.4.4 keys, CHARSET, RFC 7162 §3.1.5 MODSEQ), compiled into the
store's Search tree and evaluated there."""

from __future__ import annotations

import re

import pytest

from tau.mail.imap.parser import Parser
from tau.mail.imap.search import compile_search
from tau.mail.imap.session import SelectedMailbox
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
DAY = 86400
T0 = 1_700_000_000 - 1_700_000_000 % DAY  # a UTC midnight: 14-Nov-2023


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    e.append(ALICE, message(1, subject="Quarterly invoice", sender="billing@shop.test"),
             flags=("\\Seen",), internal_date=T0 + 3600)
    e.append(ALICE, message(2, subject="Lunch?", body="Are we still on for Ümlaut lunch?\r\n"),
             flags=("\\Flagged", "$Work"), internal_date=T0 + DAY + 60)
    e.append(ALICE, message(3, subject="Re: Quarterly invoice", body="x" * 5000),
             flags=("\\Answered", "\\Seen"), internal_date=T0 + 2 * DAY + 60)
    e.append(ALICE, message(4, subject="deleted one"), flags=("\\Deleted",), internal_date=T0 + 3 * DAY)
    return e


def search(c, keys: str, uid: bool = False) -> list[int]:
    lines = c.ok(("a UID SEARCH " if uid else "a SEARCH ") + keys)
    assert len(lines) == 1 and lines[0].startswith("* SEARCH"), lines
    return [int(x) for x in lines[0].split()[2:] if x.isdigit()]


CASES = [
    ("ALL", [1, 2, 3, 4]),
    ("SEEN", [1, 3]), ("UNSEEN", [2, 4]), ("FLAGGED", [2]), ("UNFLAGGED", [1, 3, 4]),
    ("ANSWERED", [3]), ("UNANSWERED", [1, 2, 4]), ("DELETED", [4]), ("UNDELETED", [1, 2, 3]),
    ("DRAFT", []), ("UNDRAFT", [1, 2, 3, 4]),
    ("KEYWORD $Work", [2]), ("UNKEYWORD $work", [1, 3, 4]),
    ('SUBJECT "quarterly"', [1, 3]), ("SUBJECT lunch", [2]),
    ("FROM billing@shop", [1]), ("FROM bob", [1, 2, 3, 4]), ("FROM bob@example", [2, 3, 4]),
    ("TO alice", [1, 2, 3, 4]), ("CC alice", []),
    ('HEADER Message-ID "<m3@"', [3]), ('HEADER "X-Missing" ""', []),
    ("BODY still", [2]), ("TEXT invoice", [1, 3]), ("BODY ümlaut", [2]),
    ("LARGER 1000", [3]), ("SMALLER 1000", [1, 2, 4]),
    ("BEFORE 15-Nov-2023", [1]), ("ON 15-Nov-2023", [2]), ("SINCE 16-Nov-2023", [3, 4]),
    ('SENTON "7-Feb-1994"', [1, 2, 3, 4]), ("SENTBEFORE 7-Feb-1994", []), ("SENTSINCE 8-Feb-1994", []),
    ("NOT SEEN", [2, 4]), ("OR FLAGGED ANSWERED", [2, 3]), ("(SEEN SUBJECT invoice) LARGER 1000", [3]),
    ("NOT (OR SEEN DELETED)", [2]), ("SEEN UNSEEN", []),
    ("2:3", [2, 3]), ("*", [4]), ("1,4 SEEN", [1]), ("UID 2:*", [2, 3, 4]), ("UID 9", []),
    ("RECENT", []), ("NEW", []), ("OLD", [1, 2, 3, 4]),
    ("CHARSET UTF-8 SUBJECT Lunch", [2]), ("CHARSET us-ascii ALL", [1, 2, 3, 4]),
]


def test_search_keys(env):
    """Every RFC 3501 key against one mailbox (one fixture for ~50 cases keeps the suite fast)."""
    c = env.client(ALICE, mailbox="INBOX")
    wrong = {keys: (search(c, keys), expected) for keys, expected in CASES if search(c, keys) != expected}
    assert not wrong


def test_search_with_literal_utf8(env):
    c = env.client(ALICE, mailbox="INBOX")
    needle = "Ümlaut".encode()
    out = c.send(b"a SEARCH CHARSET UTF-8 BODY {%d+}\r\n%s\r\n" % (len(needle), needle)).decode()
    assert out == "* SEARCH 2\r\na OK SEARCH completed\r\n"


def test_search_returns_sequence_numbers_or_uids(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("b EXPUNGE")
    assert search(c, "SUBJECT invoice") == [2]
    assert search(c, "SUBJECT invoice", uid=True) == [3]


def test_search_errors(env):
    c = env.client(ALICE, mailbox="INBOX")
    assert c.cmd("a SEARCH CHARSET KOI8-R ALL")[-1] == "a NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
    assert c.cmd("b SEARCH FROBBED")[-1].startswith("b BAD")
    assert c.cmd("c SEARCH")[-1].startswith("c BAD")
    assert c.cmd("d SEARCH BEFORE 32-Foo-2020")[-1].startswith("d BAD")
    assert c.cmd("e SEARCH " + "NOT " * 200 + "ALL")[-1].startswith("e BAD")
    assert c.cmd("f SEARCH (SEEN")[-1].startswith("f BAD")
    assert c.cmd("g SEARCH LARGER x")[-1].startswith("g BAD")


def test_search_modseq(env):
    c = env.client(ALICE, mailbox="INBOX")
    c.ok("a STORE 2 +FLAGS.SILENT (\\Seen)")
    top = int(re.search(r"MODSEQ \((\d+)\)", c.ok("b FETCH 2 (MODSEQ)")[0]).group(1))
    line = c.ok(f"c SEARCH MODSEQ {top}")[0]
    assert line == f"* SEARCH 2 (MODSEQ {top})"
    line = c.ok(f'd UID SEARCH MODSEQ "/flags/\\\\seen" all {top}')[0]
    assert line == f"* SEARCH 2 (MODSEQ {top})"
    assert c.ok(f"e SEARCH MODSEQ {top + 100}") == ["* SEARCH"]


def test_compiled_tree_shape():
    view = SelectedMailbox(1, "INBOX", [10, 20, 30], 1, 0, False)
    query, modseq = compile_search(Parser([b"OR 2:3 UID 5:* NOT SUBJECT x"]), view)
    assert query.tree == ("and", ("or", ("uid", [(20, 30)]), ("uid", [(5, 30)])), ("not", ("subject", "x")))
    assert not modseq


def test_body_phrase_matches_across_a_line_break(env):
    """White-space runs count as one space on both sides (fields.fold): a wrapped phrase is found,
    joined words are not."""
    c = env.client(ALICE, mailbox="INBOX")
    assert search(c, 'BODY "number 1. second"') == [1]
    assert search(c, 'BODY "number 1.  SECOND"') == [1]
    assert search(c, 'BODY "1.second"') == []
