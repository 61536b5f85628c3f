"""UTF8=ACCEPT (RFC 6855): ENABLE, mailbox names in UTF-8 instead of modified UTF-7 once enabled,
APPEND ``UTF8 (~{n})``; before ENABLE everything stays as in IMAP4rev1."""

from __future__ import annotations

import pytest

from tests.support.harness import resolve
from tests.support.imap import IMAPEnv, message

ALICE = "alice@example.test"
CAFE = "Caf\u00e9"


@pytest.fixture
def env(registry):
    e = IMAPEnv(registry)
    e.add_user(ALICE)
    return e


def _utf8_client(env):
    c = env.client(ALICE)
    assert c.ok("en ENABLE UTF8=ACCEPT") == ["* ENABLED UTF8=ACCEPT"]
    return c


def test_utf8_accept_is_advertised_after_login(env):
    c = env.client(ALICE)
    assert " UTF8=ACCEPT" in c.ok("a CAPABILITY")[0]


def test_enable_twice_reports_it_once(env):
    c = _utf8_client(env)
    assert c.ok("a ENABLE UTF8=ACCEPT") == ["* ENABLED"]


def test_enable_is_case_insensitive(env):
    c = env.client(ALICE)
    assert c.ok("a ENABLE utf8=accept") == ["* ENABLED UTF8=ACCEPT"]


def test_names_are_modified_utf7_before_enable(env):
    resolve(env.store.create_mailbox(ALICE, CAFE))
    c = env.client(ALICE)
    assert c.ok('a LIST "" "Caf*"') == ['* LIST (\\HasNoChildren) "/" "Caf&AOk-"']


def test_names_are_utf8_after_enable(env):
    resolve(env.store.create_mailbox(ALICE, CAFE))
    c = _utf8_client(env)
    assert c.ok('a LIST "" "Caf*"') == [f'* LIST (\\HasNoChildren) "/" "{CAFE}"']
    assert c.ok(f'b STATUS "{CAFE}" (MESSAGES)'.encode()) == [f'* STATUS "{CAFE}" (MESSAGES 0)']
    assert c.ok(f'c LIST "" "{CAFE}" RETURN (STATUS (UIDNEXT))'.encode())[1] == f'* STATUS "{CAFE}" (UIDNEXT 1)'


def test_utf8_names_go_out_quoted_not_as_literals(env):
    resolve(env.store.create_mailbox(ALICE, "\u65e5\u672c"))
    c = _utf8_client(env)
    raw = c.send(b'a LIST "" "*"\r\n')
    assert '"/" "\u65e5\u672c"\r\n'.encode() in raw
    assert b"{" not in raw


def test_ampersand_is_an_ordinary_character_after_enable(env):
    c = _utf8_client(env)
    c.ok('a CREATE "R&D"')
    c.ok(f'b CREATE "{CAFE}"'.encode())
    names = {m.name for m in resolve(env.store.list_mailboxes(ALICE))}
    assert {"R&D", CAFE} <= names
    assert c.ok('c LIST "" "R*"') == ['* LIST (\\HasNoChildren) "/" "R&D"']
    c.ok(f'd SELECT "{CAFE}"'.encode())


def test_ampersand_is_modified_utf7_before_enable(env):
    c = env.client(ALICE)
    c.ok('a CREATE "R&-D"')
    assert "R&D" in {m.name for m in resolve(env.store.list_mailboxes(ALICE))}
    assert c.ok('b LIST "" "R*"') == ['* LIST (\\HasNoChildren) "/" "R&-D"']


def test_append_utf8_literal8(env):
    raw = "From: J\u00fcrgen <j@example.test>\r\nSubject: Gr\u00fc\u00dfe\r\n\r\nHall\u00f6\r\n".encode()
    c = _utf8_client(env)
    out = c.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")\r\n").decode()
    assert out.startswith("a OK [APPENDUID "), out
    c.ok("b SELECT INBOX")
    fetched = c.send(b"c FETCH 1 BODY.PEEK[]\r\n")
    assert b"{%d}\r\n" % len(raw) + raw + b")" in fetched


def test_append_utf8_synchronizing_literal(env):
    raw = message(1)
    c = _utf8_client(env)
    assert c.send(b"a APPEND INBOX (\\Seen) UTF8 (~{%d}\r\n" % len(raw)) == b"+ Ready for literal data\r\n"
    assert c.send(raw + b")\r\n").startswith(b"a OK [APPENDUID ")


def test_append_utf8_before_enable_is_bad(env):
    raw = message(1)
    c = env.client(ALICE)
    assert c.send(b"a APPEND INBOX UTF8 (~{%d+}\r\n" % len(raw) + raw + b")\r\n").startswith(b"a BAD")


def test_append_utf8_without_parentheses_is_bad(env):
    raw = message(1)
    c = _utf8_client(env)
    assert c.send(b"a APPEND INBOX UTF8 ~{%d+}\r\n" % len(raw) + raw + b"\r\n").startswith(b"a BAD")


def test_envelope_is_the_same_with_and_without_utf8(env):
    env.append(ALICE, "Subject: Gr\u00fc\u00dfe\r\nFrom: a@example.test\r\n\r\nx\r\n".encode())
    plain = env.client(ALICE, mailbox="INBOX").ok("a FETCH 1 ENVELOPE")
    c = _utf8_client(env)
    c.ok("b SELECT INBOX")
    assert c.ok("c FETCH 1 ENVELOPE") == plain
