"""IMAP command syntax (RFC 3501 §9): tokens, quoting, literals, sequence sets, modified UTF-7,
dates, and the response renderers. Pure functions: no registry needed."""

from __future__ import annotations

import pytest

from tau.mail.imap.parser import (
    ParseError,
    Parser,
    SeqSet,
    decode_mailbox,
    mutf7_decode,
    mutf7_encode,
    parse_date_time,
    parse_seqset,
)
from tau.mail.imap.response import compress_uids, internal_date, mailbox_name, quote


def P(*segments: bytes) -> Parser:
    return Parser(list(segments))


def test_atoms_and_spaces():
    p = P(b"FETCH 1:3 (FLAGS)")
    assert p.keyword() == "FETCH"
    p.sp()
    assert p.seqset().ranges == [(1, 3)]
    p.sp()
    p.expect(b"(")
    assert p.atom() == "FLAGS"
    p.expect(b")")
    p.end()


def test_quoted_string_escapes():
    p = P(rb'"a \"quoted\" \\ word" rest')
    assert p.astring() == b'a "quoted" \\ word'
    p.sp()
    assert p.astring() == b"rest"


@pytest.mark.parametrize("bad", [rb'"unterminated', rb'"bad \x escape"'])
def test_bad_quoted_strings(bad):
    with pytest.raises(ParseError):
        P(bad).astring()


def test_literal_segments():
    # line "LOGIN {5}" + literal "alice" + line " {3}" + literal "pwd" + final line ""
    p = P(b"LOGIN ", b"alice", b" ", b"p\r\nd", b"")
    assert p.keyword() == "LOGIN"
    p.sp()
    assert p.astring() == b"alice"
    p.sp()
    assert p.string() == b"p\r\nd"
    p.end()


def test_literal_may_hold_anything():
    p = P(b"", b'") ( {9}\x00\xff', b"")
    assert p.astring() == b'") ( {9}\x00\xff'
    assert p.at_end()


def test_extra_arguments_rejected():
    p = P(b"NOOP extra")
    p.keyword()
    with pytest.raises(ParseError):
        p.end()


def test_nstring_nil():
    p = P(b'NIL "x"')
    assert p.nstring() is None
    p.sp()
    assert p.nstring() == b"x"


def test_numbers():
    assert P(b"42").number() == 42
    with pytest.raises(ParseError):
        P(b"0").number(nz=True)
    with pytest.raises(ParseError):
        P(b"x").number()
    with pytest.raises(ParseError):
        P(b"9" * 30).number()


@pytest.mark.parametrize("text,ranges", [
    (b"1", [(1, 1)]), (b"1:3", [(1, 3)]), (b"*", [(None, None)]), (b"5:*", [(5, None)]),
    (b"1,3:4,7", [(1, 1), (3, 4), (7, 7)]), (b"4:2", [(4, 2)]),
])
def test_seqsets(text, ranges):
    assert parse_seqset(text).ranges == ranges


@pytest.mark.parametrize("bad", [b"0", b"1:", b":2", b"1,,2", b"1:2:3", b"01", b"a"])
def test_bad_seqsets(bad):
    with pytest.raises(ParseError):
        parse_seqset(bad)


def test_seqset_resolve_orders_and_stars():
    assert SeqSet([(4, 2), (None, 3), (None, None)]).resolve(10) == [(2, 4), (3, 10), (10, 10)]


def test_flag_list_canonical_case():
    p = P(rb"(\seen \FLAGGED $Work)")
    assert p.flag_list() == ["\\Seen", "\\Flagged", "$Work"]
    assert P(b"()").flag_list() == []
    assert P(rb"\Deleted \Seen").flag_list(parens_optional=True) == ["\\Deleted", "\\Seen"]
    with pytest.raises(ParseError):
        P(rb"(\Seen").flag_list()


def test_unbalanced_list_is_an_error():
    p = P(b"(FLAGS UID")
    p.expect(b"(")
    p.atom()
    p.sp()
    p.atom()
    with pytest.raises(ParseError):
        p.expect(b")")


@pytest.mark.parametrize("name,wire", [
    ("INBOX", "INBOX"), ("Entwürfe", "Entw&APw-rfe"), ("A&B", "A&-B"), ("日本語", "&ZeVnLIqe-"),
    ("Café/Crème", "Caf&AOk-/Cr&AOg-me"), ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
])
def test_modified_utf7_round_trip(name, wire):
    assert mutf7_encode(name) == wire
    assert mutf7_decode(wire) == name


@pytest.mark.parametrize("bad", ["&Jjo", "&Jjo!-", "&AGE-x&=-"])
def test_bad_modified_utf7(bad):
    with pytest.raises(ParseError):
        mutf7_decode(bad)


def test_mailbox_names_inbox_case_and_utf8():
    assert decode_mailbox(b"inbox") == "INBOX"
    assert decode_mailbox(b"Inbox/Sub") == "INBOX/Sub"
    assert decode_mailbox(b"Entw&APw-rfe") == "Entwürfe"
    assert decode_mailbox("Entwürfe".encode()) == "Entwürfe"  # UTF-8 clients
    assert decode_mailbox(b"InboxStuff") == "InboxStuff"


def test_search_date_and_date_time():
    assert P(b"1-Feb-1994").date() == 760060800
    assert P(b'"01-feb-1994"').date() == 760060800
    with pytest.raises(ParseError):
        P(b"31-Foo-1994").date()
    assert parse_date_time("17-Jul-1996 02:44:25 -0700") == 837596665
    assert parse_date_time(" 7-Jul-1996 02:44:25 +0000") == 836707465
    with pytest.raises(ParseError):
        parse_date_time("17-Jul-1996 02:44:25")


def test_quote_and_literal_rendering():
    assert quote("plain") == '"plain"'
    assert quote('a"b\\c') == '"a\\"b\\\\c"'
    assert quote("é") == "{2}\r\né"
    assert quote("two\r\nlines") == "{10}\r\ntwo\r\nlines"
    assert mailbox_name("Entwürfe") == '"Entw&APw-rfe"'


def test_compress_uids():
    assert compress_uids([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"
    assert compress_uids([4]) == "4"
    assert compress_uids([9, 3, 4]) == "9,3:4"  # order kept: COPYUID pairs source with destination
    assert compress_uids([]) == ""


def test_internal_date_format():
    assert internal_date(837596665) == '"17-Jul-1996 09:44:25 +0000"'
    assert internal_date(0) == '"01-Jan-1970 00:00:00 +0000"'
