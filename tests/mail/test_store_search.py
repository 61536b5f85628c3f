"""Mail store SEARCH: every leaf type, and/or/not, case-insensitivity, literal % and _.
Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tau.mail.store import InvalidSearch, MailStore, Search
from tau.mail.store import search as search_module
from tests.support.harness import add_user, resolve

ALICE = "alice@example.test"
BOB = "bob@example.test"
JAN1, JAN2, JAN3, JAN4 = 1704067200, 1704153600, 1704240000, 1704326400
DEC31 = JAN1 - 86400

MESSAGES = [
    # 1
    (b"From: =?utf-8?q?Alice_=C3=84mberg?= <ae@x.test>\r\nTo: bob@example.test\r\n"
     b"Subject: Quarterly REPORT 100%\r\nDate: Mon, 1 Jan 2024 10:00:00 +0100\r\n\r\n"
     b"The numbers are in: revenue_growth up\r\n", ["\\Seen"], JAN2),
    # 2
    (("From: Carol <carol@y.test>\r\nTo: alice@example.test\r\nCc: Dave <dave@z.test>\r\n"
     "Bcc: eve@z.test\r\nSubject: Straße und Café\r\nDate: Sun, 31 Dec 2023 23:30:00 -0500\r\n"
     "X-Priority: 1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
     "Grüße aus München\r\n").encode(), ["$Important"], JAN1),
    # 3
    (b"From: shop@deals.test\r\nSubject: percent 50% off and under_score\r\n\r\n" + b"x" * 6000 + b"\r\n",
     ["\\Flagged", "\\Deleted"], JAN3),
    # 4
    (b"From: robot@deals.test\r\nSubject: underXscore percent\r\nDate: Thu, 4 Jan 2024 08:00:00 +0000\r\n"
     b"X-Note: nothing here\r\nX-Mailer: Report Generator 2\r\n"
     b"Content-Type: multipart/alternative; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
     b"plain part\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>Hidden <b>text</b> in html</p>\r\n--b1--\r\n",
     [], JAN4),
]


@pytest.fixture
def mailbox(registry):
    add_user(registry, ALICE)
    add_user(registry, BOB)
    store = MailStore(registry)
    for raw, flags, when in MESSAGES:
        resolve(store.append(ALICE, "INBOX", raw, flags=flags, internal_date=when))
    # decoys that match almost everything, elsewhere: never returned
    for raw, _, when in MESSAGES:
        resolve(store.append(ALICE, "Archive", raw, internal_date=when))
        resolve(store.append(BOB, "INBOX", raw, internal_date=when))
    return store, resolve(store.get_mailbox(ALICE, "INBOX")).id


def s(mailbox, tree):
    store, box_id = mailbox
    return resolve(store.search(box_id, Search(tree)))


CASES = [
    (("all",), [1, 2, 3, 4]),
    (("none",), []),
    (("subject", "report"), [1]),
    (("subject", "REPORT"), [1]),
    (("subject", "100%"), [1]),
    (("subject", "0%"), [1, 3]),
    (("subject", "%"), [1, 3]),
    (("subject", "p%t"), []),           # % is literal, not a wildcard
    (("subject", "_"), [3]),
    (("subject", "under_score"), [3]),  # _ is literal: "underXscore" does not match
    (("subject", "under\\score"), []),
    (("subject", "STRASSE"), [2]),      # Unicode casefolding on both engines
    (("subject", "CAFÉ"), [2]),
    (("subject", "'; DROP TABLE messages; --"), []),
    (("from", "ÄMBERG"), [1]),
    (("from", "ae@x.test"), [1]),
    (("from", "carol"), [2]),
    (("from", "DEALS.TEST"), [3, 4]),
    (("to", "bob@example"), [1]),
    (("cc", "dave"), [2]),
    (("bcc", "EVE@"), [2]),
    (("header", "x-priority", "1"), [2]),
    (("header", "X-PRIORITY", ""), [2]),
    (("header", "subject", "report"), [1]),
    (("header", "x-mailer", "report"), [4]),
    (("header", "x-note", "report"), []),   # the match must be inside that header's value
    (("header", "message-id", ""), []),
    (("body", "REVENUE_GROWTH"), [1]),
    (("body", "grüsse"), [2]),
    (("body", "hidden text"), [4]),
    (("body", "quarterly"), []),
    (("text", "quarterly"), [1]),
    (("text", "münchen"), [2]),
    (("text", "generator"), [4]),
    (("before", JAN2), [2]),
    (("on", JAN2), [1]),
    (("since", JAN2), [1, 3, 4]),
    (("senton", JAN1), [1]),
    (("sentbefore", JAN1), [2]),            # 2023-12-31 in its own zone, Jan 1 in UTC
    (("senton", DEC31), [2]),
    (("sentsince", JAN3), [3, 4]),          # no Date: the internal date counts
    (("larger", 5000), [3]),
    (("smaller", 5000), [1, 2, 4]),
    (("flag", "\\Seen", True), [1]),
    (("flag", "\\seen", False), [2, 3, 4]),
    (("seen",), [1]),
    (("unseen",), [2, 3, 4]),
    (("flagged",), [3]),
    (("unflagged",), [1, 2, 4]),
    (("deleted",), [3]),
    (("undeleted",), [1, 2, 4]),
    (("answered",), []),
    (("unanswered",), [1, 2, 3, 4]),
    (("draft",), []),
    (("keyword", "$important"), [2]),
    (("keyword", "$Imp"), []),
    (("unkeyword", "$IMPORTANT"), [1, 3, 4]),
    (("flag", "\\Recent", True), []),
    (("new",), []),
    (("old",), [1, 2, 3, 4]),
    (("uid", [(2, 3)]), [2, 3]),
    (("uid", [(3, 2)]), [2, 3]),
    (("uid", [1, 4]), [1, 4]),
    (("uid", [(3, None)]), [3, 4]),
    (("uid", [(10, None)]), [4]),           # n:* always includes the highest UID
    (("uid", [(None, None)]), [4]),
    (("uid", [(None, None), (1, 1)]), [1, 4]),
    (("uid", [(5, 9)]), []),
    (("and", ("unseen",), ("not", ("deleted",))), [2, 4]),
    (("or", ("subject", "report"), ("from", "carol")), [1, 2]),
    (("not", ("or", ("subject", "report"), ("from", "carol"))), [3, 4]),
    (("and", ("or", ("flagged",), ("seen",)), ("larger", 100)), [1, 3]),
    (("and",), [1, 2, 3, 4]),
    (("or",), []),
    (("not", ("text", "percent")), [1, 2]),
    (("younger", 10**10), [1, 2, 3, 4]),
    (("older", 10**10), []),
]


@pytest.mark.parametrize("tree,expected", CASES, ids=[repr(c[0])[:60] for c in CASES])
def test_search_leaves(mailbox, tree, expected):
    assert s(mailbox, tree) == expected


def test_modseq_search(mailbox):
    store, box_id = mailbox
    result = resolve(store.store_flags(box_id, [2], "+", ["\\Answered"]))
    modseq = result.changed[0].modseq
    assert s(mailbox, ("modseq", modseq)) == [2]
    assert s(mailbox, ("modseq", 0)) == [1, 2, 3, 4]
    assert s(mailbox, ("answered",)) == [2]


def test_many_uid_ranges_use_one_parameter(mailbox, monkeypatch):
    monkeypatch.setattr(search_module, "MAX_INLINE_RANGES", 1)
    assert s(mailbox, ("uid", [(1, 1), (3, 3)])) == [1, 3]
    assert s(mailbox, ("not", ("uid", [(1, 1), (3, 4)]))) == [2]
    sql, params = search_module.compile_search(Search(("uid", [(1, 1), (3, 3)])), "sqlite", 1, 1700000000)
    assert sql.count("?") == len(params) == 2


def test_many_uid_ranges_of_many_uids_are_tested_range_by_range(mailbox, monkeypatch):
    """Past MAX_LISTED_UIDS the set is not expanded into a list of UIDs: the same answers."""
    monkeypatch.setattr(search_module, "MAX_INLINE_RANGES", 1)
    monkeypatch.setattr(search_module, "MAX_LISTED_UIDS", 1)
    assert s(mailbox, ("uid", [(1, 1), (3, 3)])) == [1, 3]
    assert s(mailbox, ("not", ("uid", [(1, 1), (3, 4)]))) == [2]


def test_raw_tuple_accepted(mailbox):
    store, box_id = mailbox
    assert resolve(store.search(box_id, ("subject", "report"))) == [1]


@pytest.mark.parametrize("tree", [("bogus",), ("larger", "abc"), ("flag", "\\Bogus", True), "x", (), ("not",),
                                  ("on", None)])
def test_invalid_search(mailbox, tree):
    with pytest.raises(InvalidSearch):
        s(mailbox, tree)


def test_user_values_never_reach_sql_text(mailbox):
    """Text keys become keyed tokens (integers) and UID sets before any SQL is built (encryption
    at rest); a keyword stays in a parameter."""
    hostile = "x' OR 1=1 --%_\\"
    store, box_id = mailbox
    tree = ("or", ("subject", hostile), ("header", hostile, hostile), ("body", hostile))
    assert resolve(store.search(box_id, tree)) == []
    with pytest.raises(InvalidSearch):  # an unresolved text key is never compiled
        search_module.compile_search(Search(tree), "postgres", 7, 1700000000)
    sql, params = search_module.compile_search(Search(("keyword", "$Xyzzy")), "postgres", 7, 1700000000)
    assert "xyzzy" not in sql.lower() and sql.count("?") == len(params)
